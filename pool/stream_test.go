package pool_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// Each route by which a stream can end brings the pool's count of active
// streams back to 0.
func TestStreamAccountingEveryRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, c echopb.EchoClient, bs []*backend.Server, p *pool.Pool)
	}{
		{"io.EOF after CloseSend", func(t *testing.T, ctx context.Context, c echopb.EchoClient, _ []*backend.Server, p *pool.Pool) {
			s := mustBidi(t, ctx, c, p)
			require.NoError(t, s.CloseSend())
			if _, err := s.Recv(); err != io.EOF {
				require.Fail(t, fmt.Sprintf("Recv after CloseSend = %v, want io.EOF", err))
			}
		}},
		{"server-streaming to its end", func(t *testing.T, ctx context.Context, c echopb.EchoClient, _ []*backend.Server, p *pool.Pool) {
			s, err := c.ServerStream(ctx, &echopb.EchoRequest{Message: "m", Count: 3})
			require.NoError(t, err)
			for {
				if _, err := s.Recv(); err == io.EOF {
					break
				} else if err != nil {
					require.Fail(t, fmt.Sprint(err))
				}
			}
		}},
		{"client-streaming CloseAndRecv", func(t *testing.T, ctx context.Context, c echopb.EchoClient, _ []*backend.Server, p *pool.Pool) {
			s, err := c.ClientStream(ctx)
			require.NoError(t, err)
			_ = s.Send(&echopb.EchoRequest{Message: "a"})
			if _, err := s.CloseAndRecv(); err != nil {
				require.Fail(t, fmt.Sprint(err))
			}
		}},
		{"server error", func(t *testing.T, ctx context.Context, c echopb.EchoClient, bs []*backend.Server, p *pool.Pool) {
			s := mustBidi(t, ctx, c, p)
			for _, b := range bs {
				b.SetFail(codes.PermissionDenied)
			}
			// The backend fails streams at their start: open a new one.
			s2, err := c.Bidi(ctx)
			if err == nil {
				_, err = s2.Recv()
			}
			require.EqualValuesf(t, codes.PermissionDenied, status.Code(err), "got %v, want PermissionDenied", err)
			for _, b := range bs {
				b.SetOK()
			}
			_ = s.CloseSend()
			_, _ = s.Recv()
		}},
		{"caller cancels", func(t *testing.T, ctx context.Context, c echopb.EchoClient, _ []*backend.Server, p *pool.Pool) {
			cctx, cancel := context.WithCancel(ctx)
			mustBidi(t, cctx, c, p)
			cancel() // the caller never reads again
		}},
		{"deadline", func(t *testing.T, ctx context.Context, c echopb.EchoClient, _ []*backend.Server, p *pool.Pool) {
			dctx, expire := testutil.ExpiringContext(t)
			mustBidi(t, dctx, c, p) // nobody reads; the deadline passes
			expire()
		}},
		{"server ends the stream", func(t *testing.T, ctx context.Context, c echopb.EchoClient, bs []*backend.Server, p *pool.Pool) {
			s := mustBidi(t, ctx, c, p)
			got := make(chan error, 1)
			go func() { _, err := s.Recv(); got <- err }() // the caller waits for the server
			for _, b := range bs {
				b.Stop()
			}
			if err := <-got; status.Code(err) != codes.Unavailable {
				require.Fail(t, fmt.Sprintf("Recv after the server stopped = %v, want Unavailable", err))
			}
		}},
		{"pool closes", func(t *testing.T, ctx context.Context, c echopb.EchoClient, _ []*backend.Server, p *pool.Pool) {
			mustBidi(t, ctx, c, p)
			_ = p.Close()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bs := testutil.StartBackends(t, 2)
			p, _ := testutil.ReadyPool(t, bs)
			ctx := testutil.Context(t)
			tt.run(t, ctx, echopb.NewEchoClient(p), bs, p)
			testutil.WaitFor(t, "active streams back to 0", func() bool { return activeStreams(p) == 0 })
			for _, b := range p.Stats().Backends {
				for _, c := range b.Conns {
					require.Zerof(t, c.Active, "conn %d of %s: Active = %d, want 0", c.ID, b.Addr, c.Active)
				}
			}
		})
	}
}

func mustBidi(t *testing.T, ctx context.Context, c echopb.EchoClient, p *pool.Pool) grpc.BidiStreamingClient[echopb.EchoRequest, echopb.EchoResponse] {
	t.Helper()
	s := testutil.OpenBidi(t, ctx, c, 1)[0]
	n := activeStreams(p)
	require.EqualValuesf(t, 1, n, "active streams = %d, want 1", n)
	return s
}

func TestUnaryAccountingAndCounts(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	p, _ := testutil.ReadyPool(t, bs)
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	for range 10 {
		_, err := client.Unary(ctx, &echopb.EchoRequest{})
		require.NoError(t, err)
	}
	bs[0].SetFail(codes.Internal)
	bs[1].SetFail(codes.Internal)
	for range 4 {
		_, err := client.Unary(ctx, &echopb.EchoRequest{})
		require.EqualValuesf(t, codes.Internal, status.Code(err), "got %v, want Internal", err)
	}
	var calls, failures uint64
	for _, b := range p.Stats().Backends {
		calls += b.Calls
		failures += b.Failures
		require.Zerof(t, b.ActiveCalls, "%s: ActiveCalls = %d, want 0", b.Addr, b.ActiveCalls)
	}
	require.Falsef(t, calls != 14 || failures != 4, "calls, failures = %d, %d, want 14, 4", calls, failures)
}

// 180 long-lived streams opened one after another over 6 backends: the
// spread counted on the servers, for each policy (round-robin within one
// stream a backend, least-active exact).
func TestStreamDistribution(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy pool.Policy
		limit  float64
	}{
		{pool.RoundRobin, 1.05},
		{pool.LeastActive, 1.02},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			t.Parallel()
			bs := testutil.StartBackends(t, 6)
			p, _ := testutil.ReadyPool(t, bs, pool.WithPolicy(tt.policy))
			ctx, cancel := context.WithCancel(testutil.Context(t))
			defer cancel()
			testutil.OpenBidi(t, ctx, echopb.NewEchoClient(p), 180)
			counts := serverStreams(bs)
			got := backend.MaxOverMean(counts)
			t.Logf("%v: streams per backend %v, max/mean %.3f", tt.policy, counts, got)
			require.Falsef(t, got > tt.limit, "max/mean = %.3f, want ≤ %.2f (%v)", got, tt.limit, counts)
		})
	}
}

func TestStreamsSurviveAndErrorsPassThrough(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	p, _ := testutil.ReadyPool(t, bs)
	ctx := testutil.Context(t)
	bs[0].SetFail(codes.NotFound)
	_, err := echopb.NewEchoClient(p).Unary(ctx, &echopb.EchoRequest{})
	st := status.Convert(err)
	require.EqualValuesf(t, codes.NotFound, st.Code(), "got %v, want NotFound passed through", err)
	require.False(t, errors.Is(err, context.Canceled), "unexpected")
}

// A stream that exchanged messages and then ended at the
// caller's own deadline is no backend failure: default breaker settings stay
// closed and Stats counts no failure. The deadline passes when the test
// says, once the stream has had its echo, however slow the machine.
func TestStreamsEndingAtCallerDeadlineAreNotFailures(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1), pool.WithBreaker(breaker.Settings{}))
	c := echopb.NewEchoClient(p)
	for i := range breaker.DefaultConsecutiveFailures {
		ctx, expire := testutil.ExpiringContext(t)
		s := testutil.OpenBidi(t, ctx, c, 1)[0]
		expire()
		_, err := s.Recv() // nothing more comes: the watch ends at its deadline
		require.Equal(t, codes.DeadlineExceeded, status.Code(err), "stream %d", i)
	}
	b := onlyBackend(t, p)
	require.Equal(t, breaker.StateClosed, b.Breaker, "streams that ended at their callers' deadlines opened a healthy backend's breaker")
	require.Zero(t, b.Failures, "streams that ended at their callers' deadlines counted as failures")
}
