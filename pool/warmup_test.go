package pool_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/telemetry"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// warmups is a warm-up function for tests: one priming Echo call on the
// connection, counted by the backend that took it, then hold(addr).
type warmups struct {
	mu    sync.Mutex // guards n
	n     map[string]int
	hold  func(ctx context.Context, addr string) error
	total atomic.Int64
}

func newWarmups(hold func(ctx context.Context, addr string) error) *warmups {
	return &warmups{n: make(map[string]int), hold: hold}
}

func (w *warmups) fn(ctx context.Context, conn grpc.ClientConnInterface) error {
	var pr peer.Peer
	if _, err := echopb.NewEchoClient(conn).Unary(ctx, &echopb.EchoRequest{Message: "warm-up"}, grpc.Peer(&pr)); err != nil {
		return err
	}
	addr := pr.Addr.String()
	w.mu.Lock()
	w.n[addr]++
	w.mu.Unlock()
	w.total.Add(1)
	return w.hold(ctx, addr)
}

// started returns how many warm-ups reached addr's server.
func (w *warmups) started(addr string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n[addr]
}

// gated holds a warm-up until gate closes.
func gated(ctx context.Context, gate <-chan struct{}) error {
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// load makes unary calls through p on 4 goroutines, each a call every
// 2 ms at most (a steady load that leaves the CPU to the tests beside it),
// until stop is called, which returns how many calls were made and how
// many failed.
func load(t *testing.T, p *pool.Pool) (made *atomic.Int64, stop func() (calls, failed int64)) {
	t.Helper()
	ctx, cancel := context.WithCancel(testutil.Context(t))
	c := echopb.NewEchoClient(p)
	made = new(atomic.Int64)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			pace := time.NewTicker(2 * time.Millisecond)
			defer pace.Stop()
			for ctx.Err() == nil {
				if _, err := c.Unary(ctx, &echopb.EchoRequest{Message: "user"}); err != nil && ctx.Err() == nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				made.Add(1)
				select {
				case <-pace.C:
				case <-ctx.Done():
				}
			}
		})
	}
	var once sync.Once
	stop = func() (int64, int64) {
		once.Do(func() { cancel(); wg.Wait() })
		err := firstErr.Load()
		assert.Nilf(t, err, "a call failed: %v", err)
		return made.Load(), failed.Load()
	}
	t.Cleanup(func() { stop() })
	return made, stop
}

// waitMore waits until n more calls were made than when it was called.
func waitMore(t *testing.T, made *atomic.Int64, n int64) {
	t.Helper()
	from := made.Load()
	testutil.WaitFor(t, "more calls", func() bool { return made.Load() >= from+n })
}

// A backend added to a running pool takes no user call while its
// connections warm up (held by the test, however long that takes), and
// its share once they are warm; no call fails meanwhile.
func TestWarmupHoldsANewBackendUntilItIsWarm(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 3)
	late := bs[2]
	gate := make(chan struct{})
	w := newWarmups(func(ctx context.Context, addr string) error {
		if addr == late.Addr() {
			return gated(ctx, gate)
		}
		return nil
	})
	p, r := testutil.ReadyPool(t, bs[:2], pool.WithWarmup(w.fn, time.Minute))
	made, stop := load(t, p)
	waitMore(t, made, 100)

	r.UpdateState(testutil.State(testutil.AddrsOf(bs)...))
	testutil.WaitFor(t, "both connections to the new backend warming", func() bool { return w.started(late.Addr()) == 2 })
	waitMore(t, made, 300)
	st := testutil.MustFind(t, p, late.Addr())
	require.Falsef(t, st.Ready != 0 || st.Connecting != 2 || st.Calls != 0, "new backend while warming: ready %d, connecting %d, calls %d; want 0, 2, 0", st.Ready, st.Connecting, st.Calls)
	got := late.Unary()
	require.EqualValuesf(t, 2, got, "new backend's server took %d calls while warming, want only the 2 warm-ups", got)

	close(gate)
	testutil.WaitFor(t, "the new backend ready", func() bool { return testutil.MustFind(t, p, late.Addr()).Ready == 2 })
	before := late.Unary()
	from := made.Load()
	waitMore(t, made, 600)
	calls, failed := stop()
	share := float64(late.Unary()-before) / float64(calls-from)
	t.Logf("%d calls, %d failed; the new backend's share once warm: %.2f", calls, failed, share)
	require.Zerof(t, failed, "%d calls failed", failed)
	require.Falsef(t, share < 0.2 || share > 0.45, "the new backend took %.2f of the calls once warm, want about 1/3", share)
}

// A backend whose warm-up fails takes no user call; Stats, the metric and
// the connection's last error say so, the warm-up is tried again after a
// backoff, and once it succeeds the backend takes calls.
func TestWarmupFailureKeepsTheBackendOutAndRetries(t *testing.T) {
	t.Parallel()
	var badCalls msgRecorder // what the bad backend's server took, by message
	bs := testutil.StartBackendsWith(t, 3, func(i int) backend.Options {
		o := backend.Options{Name: fmt.Sprintf("b%d", i)}
		if i == 2 {
			o.ServerOptions = []grpc.ServerOption{grpc.UnaryInterceptor(badCalls.intercept)}
		}
		return o
	})
	bad := bs[2]
	var healed atomic.Bool
	w := newWarmups(func(_ context.Context, addr string) error {
		if addr == bad.Addr() && !healed.Load() {
			return errors.New("cache not loaded")
		}
		return nil
	})
	mp, read := metricsReader(t)
	r, target := testutil.ManualTarget(testutil.AddrsOf(bs)...)
	p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1), pool.WithMeterProvider(mp),
		pool.WithWarmup(w.fn, time.Minute))
	testutil.WaitFor(t, "two backends ready", func() bool {
		return testutil.MustFind(t, p, bs[0].Addr()).Ready == 1 && testutil.MustFind(t, p, bs[1].Addr()).Ready == 1
	})
	made, stop := load(t, p)
	testutil.WaitFor(t, "two failed warm-ups of the bad backend", func() bool {
		return testutil.MustFind(t, p, bad.Addr()).WarmupFailures >= 2
	})
	waitMore(t, made, 100)
	st := testutil.MustFind(t, p, bad.Addr())
	require.Falsef(t, st.Ready != 0 || st.Calls != 0, "failing backend: ready %d, calls %d; want 0, 0", st.Ready, st.Calls)
	took := badCalls.counts()
	require.Zerof(t, took["user"], "failing backend's server took %v, want only warm-ups", took)
	require.GreaterOrEqualf(t, took["warm-up"], 2, "failing backend's server took %v, want its warm-ups", took)
	require.Falsef(t, !strings.Contains(st.LastError, "warm-up") || !strings.Contains(st.LastError, "cache not loaded"), "LastError = %q, want the warm-up's error", st.LastError)
	failures := read(telemetry.Warmups)[keyOf("grpcpool.backend="+bad.Addr(), telemetry.AttrOutcome+"=error")]
	if failures < 2 {
		require.Fail(t, fmt.Sprintf("%s{outcome=error} = %v, want ≥ 2 (all: %v)", telemetry.Warmups, failures, read(telemetry.Warmups)))
	}

	healed.Store(true)
	testutil.WaitFor(t, "the healed backend ready", func() bool { return testutil.MustFind(t, p, bad.Addr()).Ready == 1 })
	before := bad.Unary()
	waitMore(t, made, 300)
	_, failed := stop()
	require.Zerof(t, failed, "%d calls failed", failed)
	require.False(t, bad.Unary() == before, "the backend took no call after its warm-up succeeded")
	ok := read(telemetry.Warmups)[keyOf("grpcpool.backend="+bad.Addr(), telemetry.AttrOutcome+"=ok")]
	require.EqualValuesf(t, 1, ok, "%s{outcome=ok} = %v, want 1", telemetry.Warmups, ok)
}

// A warm-up that does not return within its timeout counts as failed.
func TestWarmupTimeoutCountsAsFailure(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	never := make(chan struct{})
	w := newWarmups(func(ctx context.Context, _ string) error { return gated(ctx, never) })
	p := testutil.NewPool(t, bs[0].Addr(), pool.WithSize(1), pool.WithWarmup(w.fn, 50*time.Millisecond))
	testutil.WaitFor(t, "a warm-up timed out", func() bool {
		b, ok := testutil.Find(p, bs[0].Addr())
		return ok && b.WarmupFailures >= 1
	})
	st := testutil.MustFind(t, p, bs[0].Addr())
	require.Falsef(t, st.Ready != 0 || !strings.Contains(st.LastError, "not done within 50ms"), "after a timed-out warm-up: ready %d, last error %q; want 0 and the timeout", st.Ready, st.LastError)
}

// A recycle keeps the old connection taking calls until its replacement
// is warm, then retires it.
func TestWarmupRecycleWaitsForTheReplacement(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	gate := make(chan struct{})
	var first atomic.Bool
	w := newWarmups(func(ctx context.Context, _ string) error {
		if first.CompareAndSwap(false, true) {
			return nil // the first connection
		}
		return gated(ctx, gate)
	})
	r, target := testutil.ManualTarget(bs[0].Addr())
	p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1), pool.WithMaxConnAge(200*time.Millisecond),
		pool.WithWarmup(w.fn, time.Minute))
	// The first connection ready; its replacement may already be warming
	// (its age is up after 200 ms, however slow the machine).
	testutil.WaitFor(t, "the first connection ready", func() bool {
		b, ok := testutil.Find(p, bs[0].Addr())
		return ok && b.Ready == 1
	})
	oldID := testutil.MustFind(t, p, bs[0].Addr()).Conns[0].ID
	made, stop := load(t, p)
	testutil.WaitFor(t, "the replacement warming", func() bool { return w.total.Load() == 2 })
	waitMore(t, made, 300)
	st := testutil.MustFind(t, p, bs[0].Addr())
	require.Falsef(t, st.Ready != 1 || st.Draining != 0 || len(st.Conns) != 2 || st.Conns[0].ID != oldID || st.Conns[0].Status != "ready", "while the replacement warms: %+v; want the old connection %d ready and not draining, and the replacement", st, oldID)

	close(gate)
	testutil.WaitFor(t, "the old connection retired", func() bool {
		for _, c := range testutil.MustFind(t, p, bs[0].Addr()).Conns {
			if c.ID == oldID && !c.Draining {
				return false
			}
		}
		return true
	})
	waitMore(t, made, 100)
	_, failed := stop()
	require.Zerof(t, failed, "%d calls failed", failed)
}

// A connection whose transport was lost warms up again when it
// reconnects, and takes no user call before.
func TestWarmupAgainAfterReconnect(t *testing.T) {
	t.Parallel()
	bs, ports := testutil.StartBackendsOnPorts(t, 2)
	flaky := bs[1]
	gate := make(chan struct{})
	var holding atomic.Bool
	w := newWarmups(func(ctx context.Context, addr string) error {
		if addr == flaky.Addr() && holding.Load() {
			return gated(ctx, gate)
		}
		return nil
	})
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1), pool.WithWarmup(w.fn, time.Minute))
	holding.Store(true)
	flaky.Stop()
	restarted := testutil.StartBackendOn(t, ports[1], backend.Options{Name: flaky.Addr()})
	testutil.WaitFor(t, "the reconnected connection warming", func() bool { return w.started(flaky.Addr()) == 2 })
	c := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	for i := range 200 {
		_, err := c.Unary(ctx, &echopb.EchoRequest{Message: "user"})
		require.NoErrorf(t, err, "call %d: %v", i, err)
	}
	got := restarted.Unary()
	require.EqualValuesf(t, 1, got, "the restarted server took %d calls while its connection warmed, want only the warm-up", got)
	close(gate)
	testutil.WaitFor(t, "the restarted backend taking calls", func() bool {
		_, _ = c.Unary(ctx, &echopb.EchoRequest{Message: "user"})
		return restarted.Unary() > 1
	})
}

func TestWarmupOptionValidation(t *testing.T) {
	t.Parallel()
	fn := func(context.Context, grpc.ClientConnInterface) error { return nil }
	for _, tc := range []struct {
		name string
		opt  pool.Option
	}{
		{"nil function", pool.WithWarmup(nil, time.Second)},
		{"zero timeout", pool.WithWarmup(fn, 0)},
		{"negative timeout", pool.WithWarmup(fn, -time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pool.New("localhost:50051", tc.opt)
			require.Falsef(t, !errors.Is(err, pool.ErrInvalidOption) || !strings.Contains(err.Error(), "WithWarmup"), "New = %v, want ErrInvalidOption naming WithWarmup", err)
		})
	}
}

// With health checking too, a connection takes calls once warm and
// serving.
func TestWarmupWithHealthCheck(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackendsWith(t, 2, func(int) backend.Options { return backend.Options{Health: true} })
	w := newWarmups(func(context.Context, string) error { return nil })
	p, _ := testutil.ReadyPool(t, bs, pool.WithHealthCheck(""), pool.WithWarmup(w.fn, time.Minute))
	for _, b := range p.Stats().Backends {
		require.Falsef(t, !b.Healthy || b.Ready != pool.DefaultSize, "backend %s: healthy %v, ready %d; want true, %d", b.Addr, b.Healthy, b.Ready, pool.DefaultSize)
	}
	got := w.total.Load()
	require.EqualValuesf(t, 2*pool.DefaultSize, got, "%d warm-ups, want %d", got, 2*pool.DefaultSize)
}
