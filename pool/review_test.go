package pool_test

// Tests of the defects an outside review of pool/, breaker/ and retry/
// found, one or more per item of that review, each against the public API
// only (pool.New, options, Stats, Invoke/NewStream) and real gRPC servers
// on loopback, so that they hold whatever the pool's core looks like. Each
// asserts what must happen instead of the defect, and names its item.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/tcpproxy"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// rvOnly returns the stats of the pool's only backend.
func rvOnly(t testing.TB, p *pool.Pool) pool.BackendStats {
	t.Helper()
	bs := p.Stats().Backends
	require.Len(t, bs, 1, "backends in Stats")
	return bs[0]
}

// rvProxy starts a TCP proxy in front of backends, closed at cleanup.
func rvProxy(t testing.TB, backends ...string) *tcpproxy.Proxy {
	t.Helper()
	px, err := tcpproxy.New(backends...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = px.Close() })
	return px
}

// rvUnary makes one Echo unary call and returns the name of the backend
// that answered.
func rvUnary(ctx context.Context, c echopb.EchoClient, opts ...grpc.CallOption) (string, error) {
	r, err := c.Unary(ctx, &echopb.EchoRequest{Message: "x"}, opts...)
	return r.GetBackend(), err
}

// rvDialer is a context dialer whose new connections can be slowed down or
// refused, while the connections it made keep working: a connect outage.
type rvDialer struct {
	delay atomic.Int64 // time.Duration each dial waits first
	fail  atomic.Bool  // dials fail

	mu    sync.Mutex
	conns []net.Conn // every connection made, in order
}

// conn returns the i-th connection the dialer made (from 0).
func (d *rvDialer) conn(i int) net.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i < len(d.conns) {
		return d.conns[i]
	}
	return nil
}

func (d *rvDialer) option() pool.Option {
	return pool.WithDialOptions(grpc.WithContextDialer(d.dial))
}

func (d *rvDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	if w := time.Duration(d.delay.Load()); w > 0 {
		t := time.NewTimer(w)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if d.fail.Load() {
		return nil, fmt.Errorf("rv: dial %s refused: connect outage", addr)
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

// review item 1: a max-age recycle adds the replacement first, so the
// backend has size+1 connections while it waits; the idle scan must not take
// that for a surplus. A backend never has fewer than WithSize ready
// connections, by any path, and recovers from a connect outage.
func TestRecycleKeepsSizeFloorDuringIdleShrink(t *testing.T) {
	t.Parallel()
	opts := []pool.Option{pool.WithMaxConnAge(200 * time.Millisecond), pool.WithIdleTimeout(50 * time.Millisecond)}
	t.Run("size 2, replacements slow to connect", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 1)
		var d rvDialer
		p, _ := testutil.ReadyPool(t, bs, append(opts, pool.WithSize(2), d.option())...)
		d.delay.Store(int64(150 * time.Millisecond)) // longer than the idle timeout
		// Six max ages: every connection is recycled several times.
		testutil.Hold(t, 1200*time.Millisecond, func() error {
			if b := rvOnly(t, p); b.Ready < 2 {
				return fmt.Errorf("backend has %d ready connections, below WithSize(2): %+v", b.Ready, b.Conns)
			}
			return nil
		})
	})
	t.Run("size 1 through a connect outage", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 1)
		var d rvDialer
		p, _ := testutil.ReadyPool(t, bs, append(opts, pool.WithSize(1), d.option())...)
		c := echopb.NewEchoClient(p)
		d.fail.Store(true) // new connections fail; the one made works on
		testutil.Hold(t, time.Second, func() error {
			if b := rvOnly(t, p); b.Ready < 1 {
				return fmt.Errorf("during a connect outage the backend's working connection was retired: %d ready, conns %+v", b.Ready, b.Conns)
			}
			return nil
		})
		_, err := rvUnary(testutil.ContextFor(t, 2*time.Second), c)
		require.NoError(t, err, "a call during the outage, on the connection that still works")
		d.fail.Store(false)
		ctx := testutil.ContextFor(t, 10*time.Second)
		for rvOnly(t, p).Ready < 1 {
			require.NoError(t, ctx.Err(), "the pool did not recover after the outage: %+v", rvOnly(t, p).Conns)
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// rvSlowCreds is a PerRPCCredentials whose GetRequestMetadata takes delay:
// a token refresh.
type rvSlowCreds struct{ delay atomic.Int64 }

func (c *rvSlowCreds) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if d := time.Duration(c.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, nil
}

func (c *rvSlowCreds) RequireTransportSecurity() bool { return false }

// review item 2: a NewStream slower than the stall timeout because of a
// credential refresh or a slow interceptor, while other streams are open, is
// no evidence of the server's MAX_CONCURRENT_STREAMS: no limit is learned,
// the backend does not grow, and the slow stream is the caller's.
func TestStreamLimitNotLearnedFromSlowCredentialsOrInterceptor(t *testing.T) {
	t.Parallel()
	const stall = 100 * time.Millisecond
	delay := &rvSlowCreds{}
	slowIntercept := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if _, err := delay.GetRequestMetadata(ctx); err != nil {
			return nil, err
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
	for name, dial := range map[string]grpc.DialOption{
		"credentials": grpc.WithPerRPCCredentials(delay),
		"interceptor": grpc.WithStreamInterceptor(slowIntercept),
	} {
		t.Run(name, func(t *testing.T) {
			delay.delay.Store(0)
			bs := testutil.StartBackends(t, 1) // no MAX_CONCURRENT_STREAMS set
			p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1), pool.WithStreamStallTimeout(stall), pool.WithDialOptions(dial))
			ctx := testutil.ContextFor(t, 10*time.Second)
			c := echopb.NewEchoClient(p)
			testutil.OpenBidi(t, ctx, c, 2)
			delay.delay.Store(int64(3 * stall))
			slow := testutil.OpenBidi(t, ctx, c, 1)[0]
			delay.delay.Store(0)
			require.NoError(t, slow.Send(&echopb.EchoRequest{Message: "again"}), "the slow stream must stay the caller's")
			_, err := slow.Recv()
			require.NoError(t, err, "the slow stream must stay the caller's")
			b := rvOnly(t, p)
			require.Zero(t, b.StreamLimit, "a stream limit was learned from a slow %s; the server sets none", name)
			require.Equal(t, 1, b.Ready+b.Connecting, "the backend grew although no connection was full: %+v", b.Conns)
			require.EqualValues(t, 3, bs[0].ActiveStreams(), "streams open on the server")
		})
	}
}

// review item 3: smooth weighted round-robin repeats a heavy backend in
// consecutive slots; a call is refused only after every distinct pickable
// backend refused it, and a retry goes to a backend not tried yet.
func TestWeightedRoundRobinTriesEveryDistinctBackend(t *testing.T) {
	t.Parallel()
	const calls = 100
	t.Run("retry goes to the untried light backend", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 2)
		light, heavy := bs[0], bs[1]
		heavy.SetFail(codes.Unavailable)
		r, target := testutil.WeightedTarget(testutil.AddrsOf(bs), []uint32{1, 10})
		p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1),
			pool.WithRetry(retry.Policy{MaxAttempts: 2, Budget: retry.BudgetConfig{Disabled: true}}))
		require.NoError(t, p.WaitForReady(testutil.ContextFor(t, 10*time.Second)))
		c := echopb.NewEchoClient(p)
		failed, first := 0, error(nil)
		for range calls {
			got, err := rvUnary(testutil.ContextFor(t, 5*time.Second), c, grpc.WaitForReady(true))
			if err != nil || got != light.Name() {
				failed++
				first = cmpErr(first, err)
			}
		}
		require.Zero(t, failed, "%d of %d calls failed though their retry could go to the light backend; first: %v", failed, calls, first)
	})
	t.Run("heavy backend half-open with its probe out", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 2)
		light, heavy := bs[0], bs[1]
		r, target := testutil.WeightedTarget(testutil.AddrsOf(bs), []uint32{1, 10})
		p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1),
			pool.WithBreaker(breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: 50 * time.Millisecond}))
		c := echopb.NewEchoClient(p)
		ctx := testutil.ContextFor(t, 10*time.Second)
		require.NoError(t, p.WaitForReady(ctx))
		for p.Stats().Backends[0].Ready == 0 || p.Stats().Backends[1].Ready == 0 {
			require.NoError(t, ctx.Err(), "both backends ready")
			time.Sleep(5 * time.Millisecond)
		}
		heavy.SetFail(codes.Unavailable)
		for testutil.MustFind(t, p, heavy.Addr()).Breaker != breaker.StateOpen {
			require.NoError(t, ctx.Err(), "heavy backend's breaker opening")
			_, _ = rvUnary(ctx, c)
		}
		heavy.SetBlackHole()
		for testutil.MustFind(t, p, heavy.Addr()).Breaker != breaker.StateHalfOpen {
			require.NoError(t, ctx.Err(), "heavy backend's breaker half-open")
			time.Sleep(5 * time.Millisecond)
		}
		// Calls until one is the heavy backend's probe, held by its black hole.
		probeCtx, endProbe := context.WithCancel(ctx)
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait)
		t.Cleanup(endProbe)
		before := heavy.Calls()
		for heavy.Calls() == before {
			require.NoError(t, ctx.Err(), "a probe reaching the heavy backend")
			wg.Go(func() { _, _ = rvUnary(probeCtx, c) })
			time.Sleep(5 * time.Millisecond)
		}
		failed, first := 0, error(nil)
		for range calls {
			got, err := rvUnary(testutil.ContextFor(t, 5*time.Second), c)
			if err != nil || got != light.Name() {
				failed++
				first = cmpErr(first, err)
			}
		}
		require.Zero(t, failed, "%d of %d calls failed while the light backend was ready; first: %v", failed, calls, first)
	})
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	if err == nil {
		return errors.New("answered by the wrong backend")
	}
	return err
}

// review item 7: with every connection at its stream cap and a new
// connection failing to dial, a fail-fast call must not wait on the doomed
// growth: it overflows onto the least-loaded connection at once.
func TestFailedGrowthDoesNotStallFailFastCalls(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	px := rvProxy(t, bs[0].Addr())
	r, target := testutil.ManualTarget(px.Addr())
	p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1), pool.WithMaxStreamsPerConn(1))
	ctx := testutil.ContextFor(t, 10*time.Second)
	require.NoError(t, p.WaitForReady(ctx))
	c := echopb.NewEchoClient(p)
	testutil.OpenBidi(t, ctx, c, 1) // the only connection is at its cap
	px.SetBackends(testutil.DeadAddr(t))
	for i := range 3 { // and again: each growth fails the same way
		_, err := rvUnary(testutil.ContextFor(t, 3*time.Second), c)
		require.NoError(t, err, "fail-fast call %d with the connection full and growth failing", i)
	}
}

// review item 8: a long-lived stream admitted as a half-open breaker's probe
// reports success as soon as the backend answers it, so the breaker closes
// while the stream stays open.
func TestStreamProbeClosesBreakerOnFirstResponse(t *testing.T) {
	// Not parallel: its probe must be picked while a 50 ms breaker is half-open.
	bs := testutil.StartBackends(t, 1)
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1),
		pool.WithBreaker(breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: 50 * time.Millisecond}))
	ctx := testutil.ContextFor(t, 10*time.Second)
	c := echopb.NewEchoClient(p)
	bs[0].SetFail(codes.Unavailable)
	_, err := rvUnary(ctx, c)
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Equal(t, breaker.StateOpen, rvOnly(t, p).Breaker)
	bs[0].SetOK()
	for rvOnly(t, p).Breaker != breaker.StateHalfOpen {
		require.NoError(t, ctx.Err(), "breaker half-open")
		time.Sleep(5 * time.Millisecond)
	}
	// The probe, open till cleanup. It waits for the pool to offer the
	// half-open backend, then has its echo.
	probe, err := c.Bidi(testutil.ContextFor(t, time.Minute), grpc.WaitForReady(true))
	require.NoError(t, err)
	require.NoError(t, probe.Send(&echopb.EchoRequest{Message: "probe"}))
	_, err = probe.Recv()
	require.NoError(t, err)
	wait := testutil.ContextFor(t, 3*time.Second)
	for st := rvOnly(t, p).Breaker; st != breaker.StateClosed; st = rvOnly(t, p).Breaker {
		require.NoError(t, wait.Err(), "the breaker must close once the probe stream was answered; it is %v", st)
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 20 {
		_, err := rvUnary(ctx, c)
		require.NoError(t, err, "call %d to the healed backend", i)
	}
}

// review item 9: a stream that exchanged messages and then ended at the
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
	b := rvOnly(t, p)
	require.Equal(t, breaker.StateClosed, b.Breaker, "streams that ended at their callers' deadlines opened a healthy backend's breaker")
	require.Zero(t, b.Failures, "streams that ended at their callers' deadlines counted as failures")
}
