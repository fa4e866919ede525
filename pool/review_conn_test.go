package pool_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// review item 4: behind one address (a VIP) connections are recycled all
// the time; a call that meets a connection being retired is placed on
// another one, so recycling fails no call, and no message names a breaker
// when none is configured.
func TestRecyclingBehindOneAddressFailsNoCall(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	// A log sink that is slow when a connection starts draining (as one
	// writing to a remote collector may be) widens the moment in which a
	// call meets a connection that is retired but still in its snapshot.
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(2), pool.WithMaxConnAge(20*time.Millisecond),
		pool.WithLogger(slog.New(rvSlowLog{match: "draining", delay: 2 * time.Millisecond})))
	c := echopb.NewEchoClient(p)
	ctx := testutil.ContextFor(t, 20*time.Second)
	var calls, failed atomic.Int64
	var first atomic.Value
	end := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				calls.Add(1)
				if _, err := rvUnary(ctx, c); err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	wg.Wait()
	require.Zero(t, failed.Load(), "%d of %d calls failed during routine recycling, first: %v", failed.Load(), calls.Load(), first.Load())
}

// rvSlowLog is a slog.Handler that discards every record, after a delay
// for those whose message contains match.
type rvSlowLog struct {
	match string
	delay time.Duration
}

func (h rvSlowLog) Enabled(context.Context, slog.Level) bool { return true }
func (h rvSlowLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h rvSlowLog) WithGroup(string) slog.Handler            { return h }
func (h rvSlowLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		time.Sleep(h.delay)
	}
	return nil
}

// rvPoolGoroutines counts the goroutines running code of package pool, and
// says in which of its functions they are, innermost first.
func rvPoolGoroutines() (int, map[string]int) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	const pkg = "github.com/grpcpool/grpcpool/pool."
	n, where := 0, map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		i := strings.Index(g, pkg)
		if i < 0 {
			continue
		}
		n++
		fn, _, _ := strings.Cut(g[i+len(pkg):], "(0x")
		where[fn]++
	}
	return n, where
}

// review item 5: with health checking, a connection closed while it is not
// READY (its pod went away, then its address was removed) must not leave
// its health-watch goroutine behind: the pool's goroutines track its live
// connections across any number of rolling restarts.
func TestHealthWatchGoroutinesEndWithTheirConnections(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	stable := testutil.StartBackend(t, backend.Options{Health: true})
	r, target := testutil.ManualTarget(stable.Addr())
	p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(2), pool.WithHealthCheck(""))
	ctx := testutil.ContextFor(t, 20*time.Second)
	waitReadyRV(t, ctx, p, stable.Addr(), 2)
	base, baseWhere := rvPoolGoroutines()
	for i := range 4 {
		pod := testutil.StartBackend(t, backend.Options{Health: true})
		r.UpdateState(testutil.State(stable.Addr(), pod.Addr()))
		waitReadyRV(t, ctx, p, pod.Addr(), 2)
		pod.Stop() // the pod goes away...
		for b, ok := testutil.Find(p, pod.Addr()); ok && b.Ready > 0; b, ok = testutil.Find(p, pod.Addr()) {
			require.NoError(t, ctx.Err(), "restart %d: the pod's connections leaving READY", i)
			time.Sleep(5 * time.Millisecond)
		}
		r.UpdateState(testutil.State(stable.Addr())) // ...then its address is removed
		for _, ok := testutil.Find(p, pod.Addr()); ok; _, ok = testutil.Find(p, pod.Addr()) {
			require.NoError(t, ctx.Err(), "restart %d: the removed backend leaving Stats", i)
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait := testutil.ContextFor(t, 3*time.Second)
	for {
		n, where := rvPoolGoroutines()
		if n <= base {
			return
		}
		if wait.Err() != nil {
			t.Fatalf("after 4 restarts the pool runs %d goroutines, %d before, for the same live connections: %v (before: %v)", n, base, where, baseWhere)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReadyRV waits until the backend at addr has n ready connections.
func waitReadyRV(t testing.TB, ctx context.Context, p *pool.Pool, addr string, n int) {
	t.Helper()
	for b, ok := testutil.Find(p, addr); !ok || b.Ready < n || !b.Healthy; b, ok = testutil.Find(p, addr) {
		require.NoError(t, ctx.Err(), "%s with %d ready connections: %+v", addr, n, b)
		time.Sleep(5 * time.Millisecond)
	}
}

// review item 6: a grpc.WaitForReady(true) call picked onto a connection
// that dies before gRPC's own pick must not wait inside that connection
// until its deadline while another backend is READY: the pool owns the
// waiting and the call moves to the ready backend.
func TestWaitForReadyCallMovesOffADeadConnection(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	var victim atomic.Pointer[backend.Server]
	var killed atomic.Bool
	peers := testutil.NewConnPeers()
	// Runs inside the picked connection, before gRPC picks a transport:
	// the first call placed on the victim's connection finds it dead.
	kill := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if v := victim.Load(); v != nil && peers.Addr(cc) == v.Addr() && killed.CompareAndSwap(false, true) {
			v.Stop()
			for s := cc.GetState(); s.String() == "READY"; s = cc.GetState() {
				if !cc.WaitForStateChange(ctx, s) {
					break
				}
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1), pool.WithDialOptions(grpc.WithChainUnaryInterceptor(kill, peers.Unary)))
	peers.Learn(t, p)
	c := echopb.NewEchoClient(p)
	victim.Store(bs[0])
	for i := 0; !killed.Load(); i++ {
		require.Less(t, i, 50, "no call was placed on the victim's connection")
		start := time.Now()
		got, err := rvUnary(testutil.ContextFor(t, 3*time.Second), c, grpc.WaitForReady(true))
		require.NoError(t, err, "WaitForReady call %d after %v, with %s READY", i, time.Since(start).Round(time.Millisecond), bs[1].Name())
		require.Equal(t, bs[1].Name(), got)
	}
}

// review item 10: a recycle behind a VIP whose replacement lands on a
// NOT_SERVING server must keep the serving connection: the replacement has
// to be pickable (ready and serving) before the old one retires.
func TestRecycleKeepsServingConnectionWhenReplacementNotServing(t *testing.T) {
	t.Parallel()
	serving, sick := testutil.StartBackend(t, backend.Options{Health: true}), testutil.StartBackend(t, backend.Options{Health: true})
	sick.Health().SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	px := rvProxy(t, serving.Addr())
	r, target := testutil.ManualTarget(px.Addr())
	p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1), pool.WithHealthCheck(""),
		pool.WithMaxConnAge(200*time.Millisecond))
	c := echopb.NewEchoClient(p)
	_, err := rvUnary(testutil.ContextFor(t, 10*time.Second), c, grpc.WaitForReady(true))
	require.NoError(t, err)
	px.SetBackends(sick.Addr()) // every new connection lands on the sick server
	moved := time.Now()
	end := moved.Add(1200 * time.Millisecond)
	for i := 0; time.Now().Before(end); i++ {
		got, err := rvUnary(testutil.ContextFor(t, 5*time.Second), c)
		require.NoError(t, err, "call %d, %v after the VIP moved to a NOT_SERVING server; conns %+v", i, time.Since(moved).Round(time.Millisecond), rvOnly(t, p).Conns)
		require.Equal(t, serving.Name(), got)
	}
}

// review item 11: with WithRetry, a unary attempt whose request reached the
// server, after which the connection broke with no status from the server,
// is not sent again (the method is not marked idempotent): the caller sees
// Unavailable and the method ran once. Attempts the server answered with a
// retryable status of its own are retried as before.
func TestRetryDoesNotResendCallTheServerReceived(t *testing.T) {
	t.Parallel()
	servers, received, cut := crashingServers(t)
	p, _ := testutil.ReadyPool(t, servers, pool.WithSize(1), pool.WithRetry(retry.Policy{}))
	c := echopb.NewEchoClient(p)

	t.Run("server's own Unavailable is retried", func(t *testing.T) {
		servers[0].SetFail(codes.Unavailable)
		defer servers[0].SetOK()
		for i := range 4 {
			got, err := rvUnary(testutil.ContextFor(t, 5*time.Second), c)
			require.NoError(t, err, "call %d", i)
			require.Equal(t, servers[1].Name(), got)
		}
	})
	t.Run("connection broke after the request was sent", func(t *testing.T) {
		received.Store(0)
		cut.Store(true)
		_, err := rvUnary(testutil.ContextFor(t, 5*time.Second), c)
		require.Equal(t, int64(1), received.Load(), "a non-idempotent call the server received was sent again (caller got %v)", err)
		require.Equal(t, codes.Unavailable, status.Code(err), "the caller must see the broken attempt: %v", err)
	})
}

// review item 12: ConsistentHash keeps a key on one backend from the first
// call: while the key's owner makes its first connection, the key's calls
// wait for it (as gRPC's ring_hash queues the pick) rather than go to
// another backend.
func TestConsistentHashWaitsForConnectingOwner(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	const key = "user-42"
	opts := []pool.Option{pool.WithPolicy(pool.ConsistentHash), pool.WithHashKey("k"), pool.WithSize(1)}
	keyCtx := func(d time.Duration) context.Context {
		return metadata.AppendToOutgoingContext(testutil.ContextFor(t, d), "k", key)
	}
	// Who owns the key, once everything is connected.
	p1, _ := testutil.ReadyPool(t, bs, opts...)
	owner, err := rvUnary(keyCtx(5*time.Second), echopb.NewEchoClient(p1))
	require.NoError(t, err)
	require.NoError(t, p1.Close())
	var ownerAddr string
	for _, b := range bs {
		if b.Name() == owner {
			ownerAddr = b.Addr()
		}
	}

	// A new pool whose connection to the owner takes 300 ms to dial.
	slow := func(ctx context.Context, addr string) (net.Conn, error) {
		if addr == ownerAddr {
			t := time.NewTimer(300 * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	r, target := testutil.ManualTarget(testutil.AddrsOf(bs)...)
	p2 := testutil.NewPool(t, target, append(opts, pool.WithResolvers(r), pool.WithDialOptions(grpc.WithContextDialer(slow)))...)
	c := echopb.NewEchoClient(p2)
	for i := range 5 {
		got, err := rvUnary(keyCtx(5*time.Second), c)
		require.NoError(t, err, "call %d", i)
		require.Equal(t, owner, got, "call %d with key %q right after start went to another backend than its owner", i, key)
	}
}

// review item 11, the idempotent half: a method marked idempotent (in the
// policy, or by a call option) is sent again after the connection broke
// with its request in the server's hands; NotRetryable on the call wins.
func TestRetryResendsIdempotentCallTheServerReceived(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		policy   retry.Policy
		opts     []grpc.CallOption
		received int64
		code     codes.Code
	}{
		{"method in Policy.Idempotent", retry.Policy{Idempotent: []string{"/" + echopb.Echo_ServiceDesc.ServiceName + "/"}}, nil, 2, codes.OK},
		{"retry.Idempotent on the call", retry.Policy{}, []grpc.CallOption{retry.Idempotent()}, 2, codes.OK},
		{"retry.NotRetryable on the call", retry.Policy{Idempotent: []string{"/" + echopb.Echo_ServiceDesc.ServiceName + "/"}}, []grpc.CallOption{retry.NotRetryable()}, 1, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers, received, cut := crashingServers(t)
			p, _ := testutil.ReadyPool(t, servers, pool.WithSize(1), pool.WithRetry(tc.policy))
			cut.Store(true)
			_, err := rvUnary(testutil.ContextFor(t, 5*time.Second), echopb.NewEchoClient(p), tc.opts...)
			require.Equal(t, tc.received, received.Load(), "requests the servers received (caller got %v)", err)
			require.Equal(t, tc.code, status.Code(err), "%v", err)
		})
	}
}

// crashingServers starts two backends that count the requests they
// receive; while cut is set, the next one to receive a request crashes
// with it in hand (it stops without answering).
func crashingServers(t *testing.T) ([]*backend.Server, *atomic.Int64, *atomic.Bool) {
	t.Helper()
	received, cut := new(atomic.Int64), new(atomic.Bool)
	servers := make([]*backend.Server, 2)
	for i := range servers {
		intercept := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			received.Add(1)
			if cut.CompareAndSwap(true, false) {
				go servers[i].Stop()
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return h(ctx, req)
		}
		s, err := backend.Listen(backend.Options{Name: fmt.Sprintf("b%d", i), ServerOptions: []grpc.ServerOption{grpc.UnaryInterceptor(intercept)}})
		require.NoError(t, err)
		t.Cleanup(s.Stop)
		servers[i] = s
	}
	return servers, received, cut
}
