package lb

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
)

// watched is the policy registered under a name of its own, whose
// pickers count the picks they fail (a core "fail": nothing could take
// the call; grpc keeps a WaitForReady call waiting for the next picker),
// and which keeps the policy it built.
type watched struct {
	name    string
	refused atomic.Int64
	bal     atomic.Pointer[lbBalancer]
}

func watch() *watched {
	w := &watched{name: fmt.Sprintf("grpcpool_test_%d", testPolicies.Add(1))}
	balancer.Register(watchBuilder{builder: builder{name: w.name}, w: w})
	return w
}

type watchBuilder struct {
	builder
	w *watched
}

func (wb watchBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	b := wb.builder.Build(watchCC{ClientConn: cc, w: wb.w}, opts)
	wb.w.bal.Store(b.(*lbBalancer))
	return b
}

// watchCC hands grpc the policy's pickers wrapped in watchPicker.
type watchCC struct {
	balancer.ClientConn
	w *watched
}

func (c watchCC) UpdateState(s balancer.State) {
	s.Picker = watchPicker{Picker: s.Picker, w: c.w}
	c.ClientConn.UpdateState(s)
}

type watchPicker struct {
	balancer.Picker
	w *watched
}

func (p watchPicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	r, err := p.Picker.Pick(info)
	if err != nil && err != balancer.ErrNoSubConnAvailable {
		p.w.refused.Add(1)
	}
	return r, err
}

// breakerState is the breaker state the policy's core has for its only
// backend.
func (w *watched) breakerState() breaker.State {
	b := w.bal.Load()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur.k.Backends()[0].BreakerState()
}

// holdKey in a call's metadata makes holdCalls hold the call on the
// server until the client ends it: a unary call gets no answer, a
// stream gets its response headers and then nothing.
const holdKey = "x-hold"

// holdCalls returns server interceptors for holdKey and the number of
// calls they hold now.
func holdCalls() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor, *atomic.Int64) {
	var held atomic.Int64
	hold := func(ctx context.Context) error {
		held.Add(1)
		defer held.Add(-1)
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	holds := func(ctx context.Context) bool {
		md, _ := metadata.FromIncomingContext(ctx)
		return len(md.Get(holdKey)) > 0
	}
	unary := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if holds(ctx) {
			return nil, hold(ctx)
		}
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if holds(ss.Context()) {
			if err := ss.SendHeader(nil); err != nil {
				return err
			}
			return hold(ss.Context())
		}
		return h(srv, ss)
	}
	return unary, stream, &held
}

// A WaitForReady RPC that the only backend's half-open breaker refuses
// (its one probe is out) waits for a new picker. The probe then ends as
// neither success nor failure — its caller cancels it, before the
// backend answered (a unary call) or after (a stream that had its
// headers) — which gives the probe slot back without any change of
// breaker state. The waiting RPC gets through, long before its 20 s
// deadline, and its success closes the breaker.
func TestWaitForReadyCallTakesTheProbeSlotGivenBack(t *testing.T) {
	probes := []struct {
		name string
		// place starts the probe within ctx, as a WaitForReady RPC (the
		// breaker is open when it starts), and returns once the client
		// has what the server answers before it holds the call; the
		// probe's end is sent on ended.
		place func(ctx context.Context, c echopb.EchoClient, ended chan<- error) error
	}{
		{"unary cancelled unanswered", func(ctx context.Context, c echopb.EchoClient, ended chan<- error) error {
			go func() {
				_, err := c.Unary(ctx, &echopb.EchoRequest{}, grpc.WaitForReady(true))
				ended <- err
			}()
			return nil
		}},
		{"stream cancelled after its headers", func(ctx context.Context, c echopb.EchoClient, ended chan<- error) error {
			s, err := c.ServerStream(ctx, &echopb.EchoRequest{Count: 1}, grpc.WaitForReady(true))
			if err != nil {
				return err
			}
			if _, err := s.Header(); err != nil {
				return err
			}
			go func() {
				_, err := s.Recv()
				ended <- err
			}()
			return nil
		}},
	}
	for _, pr := range probes {
		w := watch() // before any parallel test: grpc's registry is not safe for concurrent use
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			unary, stream, held := holdCalls()
			s := testutil.StartBackend(t, backend.Options{ServerOptions: []grpc.ServerOption{
				grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream)}})
			cc, _ := dial(t, []*server{{Server: s}}, serviceConfig(w.name, Config{
				Size:            1,
				MaxSize:         1,
				MaxEjectPercent: 100,
				Breaker:         &Breaker{ConsecutiveFailures: 1, OpenTimeout: 200 * time.Millisecond},
			}))
			client := echopb.NewEchoClient(cc)
			ctx := testutil.Context(t)
			mustCall(t, cc, 1)

			s.SetFail(codes.Unavailable)
			if _, err := call(cc); status.Code(err) != codes.Unavailable {
				t.Fatalf("call on the failing backend: %v, want codes.Unavailable", err)
			}
			s.SetOK()

			// The probe waits out the open timeout, then the half-open
			// breaker lets it through; the server holds it.
			pctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, holdKey, "1"))
			defer cancel()
			ended := make(chan error, 1)
			if err := pr.place(pctx, client, ended); err != nil {
				t.Fatalf("probe: %v", err)
			}
			testutil.WaitFor(t, "the probe to be held on the server", func() bool { return held.Load() == 1 })
			applied(w.bal.Load().q) // the breaker's change to half-open, published
			if got := w.breakerState(); got != breaker.StateHalfOpen {
				t.Fatalf("breaker = %v with its probe out, want half-open", got)
			}

			before := w.refused.Load()
			wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
			defer wcancel()
			start := time.Now()
			waited := make(chan error, 1)
			go func() {
				_, err := client.Unary(wctx, &echopb.EchoRequest{}, grpc.WaitForReady(true))
				waited <- err
			}()
			testutil.WaitFor(t, "the breaker to refuse the WaitForReady call", func() bool { return w.refused.Load() > before })

			cancel()
			if err := <-ended; status.Code(err) != codes.Canceled {
				t.Fatalf("probe ended with %v, want codes.Canceled", err)
			}
			if err := <-waited; err != nil {
				t.Fatalf("WaitForReady call after %v: %v, want it through once the probe slot is given back", time.Since(start).Round(time.Millisecond), err)
			}
			t.Logf("the WaitForReady call went through %v after it started", time.Since(start).Round(time.Millisecond))
			applied(w.bal.Load().q)
			if got := w.breakerState(); got != breaker.StateClosed {
				t.Errorf("breaker = %v, want closed", got)
			}
		})
	}
}
