package pool_test

// Breaker and retry against real Echo servers: a sick backend, a black
// hole, a fleet that is all down, a retry storm, a backend that heals,
// where retries go, deadlines, streams and cancellation. The servers are on
// loopback TCP, or on bufconn in a synctest bubble where what a test bounds
// is on the clock. Every count that matters is taken on the servers
// (backend.Server.Calls), not from the pool's own view.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// resLoadResult is what a load of unary calls saw.
type resLoadResult struct {
	calls   int
	failed  int
	byCode  map[codes.Code]int
	example error // one failed call's error, nil when none failed
	elapsed time.Duration
}

func (r resLoadResult) String() string {
	return fmt.Sprintf("%d of %d calls failed %v (e.g. %v) in %v", r.failed, r.calls, r.byCode, r.example, r.elapsed.Round(time.Millisecond))
}

// resLoad makes calls unary calls through c from goroutines goroutines,
// each call with its own timeout.
func resLoad(ctx context.Context, c echopb.EchoClient, calls, goroutines int, timeout time.Duration) resLoadResult {
	var (
		next atomic.Int64
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	r := resLoadResult{calls: calls, byCode: map[codes.Code]int{}}
	start := time.Now()
	for range goroutines {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(calls); i = next.Add(1) {
				cctx, cancel := context.WithTimeout(ctx, timeout)
				_, err := c.Unary(cctx, &echopb.EchoRequest{Message: fmt.Sprint("call-", i)})
				cancel()
				if err == nil {
					continue
				}
				mu.Lock()
				r.failed++
				r.byCode[status.Code(err)]++
				if r.example == nil {
					r.example = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r
}

// totalCalls is the number of Echo RPCs the servers received, every
// attempt of every call counted.
func totalCalls(bs []*backend.Server) int64 {
	var n int64
	for _, b := range bs {
		n += b.Calls()
	}
	return n
}

// breakerLog records the breaker changes the pool logs (WithLogger: "breaker
// changes" at info level), so a test can follow a breaker without calling
// Stats.
type breakerLog struct {
	mu      sync.Mutex
	changes []string // "addr: from -> to"
}

func (h *breakerLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *breakerLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *breakerLog) WithGroup(string) slog.Handler            { return h }

func (h *breakerLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "grpcpool: circuit breaker" {
		return nil
	}
	var addr, from, to string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "addr":
			addr = a.Value.String()
		case "from":
			from = a.Value.String()
		case "to":
			to = a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes = append(h.changes, addr+": "+from+" -> "+to)
	return nil
}

// has reports whether addr's breaker has gone from from to to.
func (h *breakerLog) has(addr string, from, to breaker.State) bool {
	want := addr + ": " + from.String() + " -> " + to.String()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.changes {
		if c == want {
			return true
		}
	}
	return false
}

func (h *breakerLog) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.changes, "; ")
}

// probeBound is how many calls a breaker with settings s can let through
// to a backend that fails every call, during a load of elapsed from
// goroutines goroutines that starts with the breaker closed: the calls
// that trip it, those already admitted and in flight when it trips (at
// most one per other goroutine), and the probes of every half-open period
// (one per OpenTimeout at most, since each failed probe opens it again for
// a full OpenTimeout).
func probeBound(s breaker.Settings, goroutines int, elapsed time.Duration) int {
	s = s.WithDefaults()
	periods := int(elapsed / s.OpenTimeout)
	return int(s.ConsecutiveFailures) + goroutines - 1 + int(s.HalfOpenProbes)*periods
}

// One backend of four answers every call with Unavailable.
func TestResilienceSickBackend(t *testing.T) {
	t.Parallel()
	// 300 calls: the breaker trips within the first few dozen; the rest
	// show the sick backend gets no more than the bound.
	const calls, goroutines = 300, 16

	// Breaker and retry with their documented defaults: not one call
	// fails, and the sick backend sees no more than it takes to trip its
	// breaker.
	t.Run("breaker+retry", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 4)
		sick := bs[0]
		sick.SetFail(codes.Unavailable)
		settings := breaker.Settings{}
		p, _ := testutil.ReadyPool(t, bs, pool.WithBreaker(settings), pool.WithRetry(retry.Policy{}))
		before := sick.Calls()

		r := resLoad(testutil.Context(t), echopb.NewEchoClient(p), calls, goroutines, 10*time.Second)
		assert.Zerof(t, r.failed, "%v; want 0 failed", r)
		bound := probeBound(settings, goroutines, r.elapsed)
		got := sick.Calls() - before
		assert.Falsef(t, got > int64(bound), "sick backend got %d attempts, want at most %d (trip + in flight + probes)", got, bound)
		t.Logf("%v; sick backend: %d attempts (bound %d); healthy: %d / %d / %d",
			r, sick.Calls()-before, bound, bs[1].Calls(), bs[2].Calls(), bs[3].Calls())
	})

	// Breaker alone: the calls that reach the sick backend fail, and they
	// are bounded by the breaker. OpenTimeout is long enough that no more
	// than one half-open period fits in the test.
	t.Run("breaker", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 4)
		sick := bs[0]
		sick.SetFail(codes.Unavailable)
		settings := breaker.Settings{OpenTimeout: 5 * time.Second}
		p, _ := testutil.ReadyPool(t, bs, pool.WithBreaker(settings))
		before := sick.Calls()

		r := resLoad(testutil.Context(t), echopb.NewEchoClient(p), calls, goroutines, 10*time.Second)
		bound := probeBound(settings, goroutines, r.elapsed)
		trip := int(settings.WithDefaults().ConsecutiveFailures)
		assert.Falsef(t, r.failed < trip || r.failed > bound, "%v; want between %d (trip) and %d (trip + in flight + probes)", r, trip, bound)
		n := r.byCode[codes.Unavailable]
		assert.EqualValuesf(t, r.failed, n, "%d of %d failures are Unavailable, want all: %v", n, r.failed, r)
		// Without retry every attempt on the sick backend is one failed call.
		got := sick.Calls() - before
		assert.EqualValuesf(t, int64(r.failed), got, "sick backend got %d attempts, want %d (one per failed call)", got, r.failed)
		t.Logf("%v; bound %d", r, bound)
	})
}

// A backend that accepts calls and never answers them trips its breaker
// through the callers' deadlines (DeadlineExceeded is a failure); after
// that every call succeeds on the others. Over bufconn in a synctest
// bubble: a healthy call answers before any deadline of the bubble's
// clock, however slow the machine.
func TestResilienceBlackHole(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testResilienceBlackHole)
}

func testResilienceBlackHole(t *testing.T) {
	const goroutines, perCall = 8, time.Second
	settings := breaker.Settings{ConsecutiveFailures: 3, OpenTimeout: time.Minute}
	p, bs, addrs := bufFleet(t, 4, pool.WithBreaker(settings))
	hole, holeAddr := bs[0], addrs[0]
	hole.SetBlackHole()
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)

	// Until the breaker opens: each goroutine calls on, at most 50 times.
	var opened atomic.Bool
	var mu sync.Mutex
	var failed []error
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range 50 {
				if opened.Load() {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, perCall)
				_, err := client.Unary(cctx, &echopb.EchoRequest{})
				cancel()
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
				if b, _ := testutil.Find(p, holeAddr); b.Breaker == breaker.StateOpen {
					opened.Store(true)
				}
			}
		})
	}
	wg.Wait()
	if !opened.Load() {
		require.Fail(t, fmt.Sprintf("breaker of the black hole still %v after %d failed calls", testutil.MustFind(t, p, holeAddr).Breaker, len(failed)))
	}
	for _, err := range failed {
		assert.EqualValuesf(t, codes.DeadlineExceeded, status.Code(err), "while tripping: got %v, want DeadlineExceeded", err)
	}
	max := int(settings.ConsecutiveFailures) + goroutines - 1
	assert.Falsef(t, len(failed) > max, "%d calls failed before the breaker opened, want at most %d", len(failed), max)

	// After: every call succeeds, and none reaches the black hole. A call
	// sent there would fail after its deadline however long it is, so the
	// deadline here only has to be long enough for a healthy call on a
	// loaded machine.
	before := hole.Calls()
	r := resLoad(ctx, client, 400, goroutines, 10*time.Second)
	assert.Zerof(t, r.failed, "after the breaker opened: %v; want 0 failed", r)
	got := hole.Calls() - before
	assert.Zerof(t, got, "black hole got %d calls after its breaker opened, want 0", got)
	t.Logf("%d calls failed (DeadlineExceeded) while tripping; then %v", len(failed), r)
}

// With the default cap on ejection, a fleet-wide outage never shuts every
// backend until its breaker's open timeout: calls keep reaching the
// backends (they fail with the backends' own status, not "open circuit
// breakers"), and the first calls after the fleet recovers succeed,
// although the breakers' open timeout is a minute away.
func TestOpenBreakersNeverShutTheFleet(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 4)
	for _, b := range bs {
		b.SetFail(codes.Unavailable)
	}
	p, _ := testutil.ReadyPool(t, bs, pool.WithBreaker(breaker.Settings{ConsecutiveFailures: 3, OpenTimeout: time.Minute}))
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	open := func() int {
		n := 0
		for _, b := range p.Stats().Backends {
			if b.Breaker == breaker.StateOpen {
				n++
			}
		}
		return n
	}
	for i := 0; open() < len(bs); i++ {
		require.Less(t, i, 200, "breakers not all open: %+v", p.Stats().Backends)
		_, err := client.Unary(ctx, &echopb.EchoRequest{})
		require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
		require.NotContains(t, status.Convert(err).Message(), "open circuit breakers", "the outage shut the fleet")
	}
	// The pickers follow the last breaker change once the core has applied
	// it (an event after the call that opened it); then every call is
	// placed past the open breakers.
	testutil.WaitFor(t, "calls to reach the backends with every breaker open", func() bool {
		before := totalCalls(bs)
		_, err := client.Unary(ctx, &echopb.EchoRequest{})
		return status.Code(err) == codes.Unavailable && totalCalls(bs) == before+1
	})
	before := totalCalls(bs)
	for range 20 {
		_, err := client.Unary(ctx, &echopb.EchoRequest{})
		require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	}
	require.Equal(t, before+20, totalCalls(bs), "with every breaker open, calls still reach the backends")
	for _, b := range bs {
		b.SetOK()
	}
	for i := range 20 {
		_, err := client.Unary(ctx, &echopb.EchoRequest{})
		require.NoError(t, err, "call %d after the fleet recovered", i)
	}
}

// Every backend fails: once every breaker is open, calls fail at once with
// Unavailable and a message naming the open breakers, and reach no server.
func TestResilienceAllDown(t *testing.T) {
	t.Parallel()
	settings := breaker.Settings{ConsecutiveFailures: 3, OpenTimeout: time.Minute}
	tests := []struct {
		name string
		opts []pool.Option
	}{
		{"breaker", []pool.Option{pool.WithBreaker(settings), pool.WithMaxEjectPercent(100)}},
		// A backoff longer than any test: if the pool retried a call that
		// found every breaker open, the call would still be waiting when
		// its context is canceled.
		{"breaker+retry", []pool.Option{pool.WithBreaker(settings), pool.WithMaxEjectPercent(100), pool.WithRetry(retry.Policy{InitialBackoff: time.Hour})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bs := testutil.StartBackends(t, 4)
			for _, b := range bs {
				b.SetFail(codes.Unavailable)
			}
			p, _ := testutil.ReadyPool(t, bs, tt.opts...)
			client := echopb.NewEchoClient(p)
			ctx := testutil.Context(t)
			allOpen := func() bool {
				for _, b := range p.Stats().Backends {
					if b.Breaker != breaker.StateOpen {
						return false
					}
				}
				return true
			}
			for i := 0; !allOpen(); i++ {
				if i == 100 {
					require.Fail(t, fmt.Sprintf("breakers not all open after %d failed calls: %+v", i, p.Stats().Backends))
				}
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := client.Unary(cctx, &echopb.EchoRequest{})
				cancel()
				require.EqualValuesf(t, codes.Unavailable, status.Code(err), "while tripping: got %v, want Unavailable", err)
			}
			// The snapshot that leaves the open backends out is published
			// just after the last breaker opened; wait for it.
			testutil.WaitFor(t, "calls to see every breaker open", func() bool {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				_, err := client.Unary(cctx, &echopb.EchoRequest{})
				return strings.Contains(status.Convert(err).Message(), "open circuit breakers")
			})

			before := totalCalls(bs)
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for range 10 {
						// No deadline (not even the test's): the call must
						// not wait for anything. The context is canceled
						// after a second only so that a pool that waits
						// does not hang the test.
						cctx, cancel := context.WithCancel(context.Background())
						stop := time.AfterFunc(time.Second, cancel)
						_, err := client.Unary(cctx, &echopb.EchoRequest{})
						ctxErr := cctx.Err()
						stop.Stop()
						cancel()
						st := status.Convert(err)
						assert.Falsef(t, st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "open circuit breakers"), "goroutine %d: got %v, want Unavailable naming the open circuit breakers", g, err)
						if ctxErr != nil {
							assert.Fail(t, fmt.Sprintf("goroutine %d: the call returned only after its context ended (%v): it should fail at once", g, ctxErr))
							return
						}
					}
				})
			}
			wg.Wait()
			got := totalCalls(bs) - before
			assert.Zerof(t, got, "servers got %d calls while every breaker was open, want 0", got)
		})
	}
}

// Every backend fails and only retry is on: the retry budget keeps the
// attempts within Ratio × calls plus the floor, MinPerSecond × Window
// (retry.BudgetConfig). The test ends well within one window, so nothing
// in the budget expires: over bufconn in a synctest bubble, the load takes
// only its backoffs on the bubble's clock, however slow the machine.
func TestResilienceRetryStorm(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testResilienceRetryStorm)
}

func testResilienceRetryStorm(t *testing.T) {
	const calls, goroutines = 400, 16
	// Five attempts a call without a budget would be 5 × calls.
	pol := retry.Policy{MaxAttempts: 5, InitialBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
	p, bs, _ := bufFleet(t, 4, pool.WithRetry(pol))
	for _, b := range bs {
		b.SetFail(codes.Unavailable)
	}
	before := totalCalls(bs)

	r := resLoad(testutil.Context(t), echopb.NewEchoClient(p), calls, goroutines, 10*time.Second)
	attempts := totalCalls(bs) - before
	budget := pol.WithDefaults().Budget
	require.Falsef(t, r.elapsed >= budget.Window*9/10, "load took %v, longer than 0.9 × the budget window %v: the bound below does not hold for it", r.elapsed, budget.Window)
	floor := int64(budget.MinPerSecond) * int64(budget.Window/time.Second)
	bound := int64(float64(calls)*(1+budget.Ratio)) + floor
	assert.Falsef(t, r.failed != calls || r.byCode[codes.Unavailable] != calls, "%v; want all %d Unavailable", r, calls)
	assert.Falsef(t, attempts > bound, "servers got %d attempts for %d calls, want at most %d (%.1f × calls + floor %d)", attempts, calls, bound, 1+budget.Ratio, floor)
	assert.Falsef(t, attempts <= calls, "servers got %d attempts for %d calls: no retry was made at all", attempts, calls)
	t.Logf("%d calls, %d attempts (bound %d, %d without a budget), in %v", calls, attempts, bound, calls*pol.MaxAttempts, r.elapsed.Round(time.Millisecond))
}

// A backend heals: after OpenTimeout its breaker lets a probe through,
// closes, and the backend takes its share of calls again.
func TestResilienceRecovery(t *testing.T) {
	t.Parallel()
	const n = 4
	bs := testutil.StartBackends(t, n)
	sick := bs[0]
	sick.SetFail(codes.Unavailable)
	log := &breakerLog{}
	settings := breaker.Settings{ConsecutiveFailures: 3, OpenTimeout: 500 * time.Millisecond}
	p, _ := testutil.ReadyPool(t, bs, pool.WithBreaker(settings), pool.WithLogger(slog.New(log)))
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)

	// A steady load, paced so as not to hog two cores.
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for lctx.Err() == nil {
				cctx, cancel := context.WithTimeout(lctx, 5*time.Second)
				_, _ = client.Unary(cctx, &echopb.EchoRequest{})
				cancel()
				select {
				case <-tick.C:
				case <-lctx.Done():
				}
			}
		})
	}
	defer wg.Wait()
	defer stopLoad()

	// Stats is not polled while the breaker is open: see
	// TestResilienceStatsAfterOpenTimeout.
	addr := sick.Addr()
	testutil.WaitFor(t, "the sick backend's breaker to open", func() bool { return log.has(addr, breaker.StateClosed, breaker.StateOpen) })
	sick.SetOK()
	healed := time.Now()
	testutil.WaitFor(t, "a half-open probe to close the breaker", func() bool { return log.has(addr, breaker.StateHalfOpen, breaker.StateClosed) })
	assert.Truef(t, log.has(addr, breaker.StateOpen, breaker.StateHalfOpen), "breaker closed without being half-open: %v", log)
	t.Logf("breaker closed %v after the backend healed (OpenTimeout %v): %v", time.Since(healed).Round(time.Millisecond), settings.OpenTimeout, log)
	stopLoad()
	wg.Wait()

	got := testutil.MustFind(t, p, addr).Breaker
	require.EqualValuesf(t, breaker.StateClosed, got, "Stats: breaker of the healed backend = %v, want closed", got)
	before := make([]int64, n)
	for i, b := range bs {
		before[i] = b.Calls()
	}
	const calls = 400
	r := resLoad(ctx, client, calls, 4, 5*time.Second)
	require.Zerof(t, r.failed, "after recovery: %v; want 0 failed", r)
	share := float64(sick.Calls()-before[0]) / calls
	want := 1.0 / n
	assert.Falsef(t, share < want*0.6 || share > want*1.4, "healed backend took %.2f of the calls, want about %.2f", share, want)
	t.Logf("healed backend's share of %d calls: %.3f", calls, share)
}

// msgRecorder is a server interceptor that records the message of every
// unary call a backend receives.
type msgRecorder struct {
	mu   sync.Mutex
	seen map[string]int
}

func (r *msgRecorder) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if m, ok := req.(*echopb.EchoRequest); ok {
		r.mu.Lock()
		if r.seen == nil {
			r.seen = map[string]int{}
		}
		r.seen[m.GetMessage()]++
		r.mu.Unlock()
	}
	return h(ctx, req)
}

func (r *msgRecorder) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.seen))
	for k, v := range r.seen {
		out[k] = v
	}
	return out
}

// A call that fails with Unavailable on one backend is retried on another:
// with n backends of which n-1 fail every call and n attempts a call, each
// call succeeds on the healthy one, and no failing backend sees a call
// twice, under every policy.
func TestResilienceRetryGoesElsewhere(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		n      int
		policy pool.Policy
	}{
		{"RoundRobin 2", 2, pool.RoundRobin},
		{"RoundRobin 3", 3, pool.RoundRobin},
		{"LeastActive 3", 3, pool.LeastActive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			recs := make([]msgRecorder, tt.n)
			var bs []*backend.Server
			for i := range recs {
				s, err := backend.Listen(backend.Options{
					Name:          fmt.Sprintf("b%d", i),
					ServerOptions: []grpc.ServerOption{grpc.UnaryInterceptor(recs[i].intercept)},
				})
				require.NoError(t, err)
				t.Cleanup(s.Stop)
				bs = append(bs, s)
			}
			good := bs[tt.n-1]
			for _, b := range bs[:tt.n-1] {
				b.SetFail(codes.Unavailable)
			}
			// Ratio 1: the budget allows n-1 retries for every call, so only
			// where the retries go decides whether the call succeeds.
			pol := retry.Policy{MaxAttempts: tt.n, InitialBackoff: time.Millisecond, Budget: retry.BudgetConfig{Ratio: 1, MinPerSecond: 100}}
			p, _ := testutil.ReadyPool(t, bs, pool.WithRetry(pol), pool.WithPolicy(tt.policy))
			client := echopb.NewEchoClient(p)
			ctx := testutil.Context(t)

			const calls = 100
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for i := next.Add(1); i <= calls; i = next.Add(1) {
						resp, err := client.Unary(ctx, &echopb.EchoRequest{Message: fmt.Sprint("call-", i)})
						if err != nil {
							assert.Fail(t, fmt.Sprintf("call-%d: %v", i, err))
						} else if resp.GetBackend() != good.Name() {
							assert.Fail(t, fmt.Sprintf("call-%d answered by %s, want %s", i, resp.GetBackend(), good.Name()))
						}
					}
				})
			}
			wg.Wait()

			retried := 0
			for i := range tt.n - 1 {
				seen := recs[i].counts()
				retried += len(seen)
				for m, k := range seen {
					assert.Falsef(t, k > 1, "failing backend b%d saw %s %d times, want at most once", i, m, k)
				}
			}
			require.Falsef(t, retried == 0, "no call went to a failing backend first: nothing was retried")
			onGood := recs[tt.n-1].counts()
			for i := 1; i <= calls; i++ {
				k := onGood[fmt.Sprint("call-", i)]
				assert.EqualValuesf(t, 1, k, "healthy backend saw call-%d %d times, want once", i, k)
			}
			t.Logf("%d calls: %d attempts on failing backends, all retried elsewhere", calls, retried)
		})
	}
}

// A retry whose backoff would outlast the caller's deadline is not made:
// the call returns the attempt's own Unavailable, not DeadlineExceeded,
// after one attempt.
func TestResilienceNoRetryPastDeadline(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	for _, b := range bs {
		b.SetFail(codes.Unavailable)
	}
	// Backoff is drawn from [0, 100000h]: one below the 30 s left is an
	// 8e-8 chance per call. The deadline is far, so that a slow machine
	// does not reach it: a call that waited its backoff would.
	p, _ := testutil.ReadyPool(t, bs, pool.WithRetry(retry.Policy{InitialBackoff: 100000 * time.Hour}))
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	for i := range 5 {
		before := totalCalls(bs)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := client.Unary(cctx, &echopb.EchoRequest{})
		ctxErr := cctx.Err()
		cancel()
		st := status.Convert(err)
		assert.Falsef(t, st.Code() != codes.Unavailable || !strings.HasPrefix(st.Message(), "backend b"), "call %d: got %v, want the backend's own Unavailable", i, err)
		assert.Falsef(t, ctxErr != nil, "call %d returned after its deadline (%v), want at once", i, ctxErr)
		got := totalCalls(bs) - before
		assert.EqualValuesf(t, 1, got, "call %d made %d attempts, want 1", i, got)
	}
}

// A stream whose NewStream failed (nothing reached a server) is begun again
// on another backend; once begun, a stream that fails is not retried.
func TestResilienceStreamRetry(t *testing.T) {
	t.Parallel()
	pol := retry.Policy{InitialBackoff: time.Millisecond, Budget: retry.BudgetConfig{Ratio: 1}}

	t.Run("NewStream failure retried elsewhere", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 2)
		bad, good := bs[0], bs[1]
		// A client interceptor fails NewStream on the connections to bad,
		// as a transport that cannot open a stream would: nothing is sent.
		var rejected atomic.Int64
		peers := testutil.NewConnPeers()
		failBad := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			if peers.Addr(cc) == bad.Addr() {
				rejected.Add(1)
				return nil, status.Error(codes.Unavailable, "test: cannot open a stream")
			}
			return streamer(ctx, desc, cc, method, opts...)
		}
		p, _ := testutil.ReadyPool(t, bs, pool.WithRetry(pol), pool.WithDialOptions(grpc.WithStreamInterceptor(failBad), grpc.WithUnaryInterceptor(peers.Unary)))
		peers.Learn(t, p)
		client := echopb.NewEchoClient(p)
		ctx := testutil.Context(t)
		const streams = 20
		for i := range streams {
			s, err := client.Bidi(ctx)
			require.NoErrorf(t, err, "stream %d: Bidi: %v", i, err)
			if err := s.Send(&echopb.EchoRequest{Message: "hi"}); err != nil {
				require.Fail(t, fmt.Sprintf("stream %d: Send: %v", i, err))
			}
			resp, err := s.Recv()
			require.NoErrorf(t, err, "stream %d: Recv: %v", i, err)
			if resp.GetBackend() != good.Name() {
				assert.Fail(t, fmt.Sprintf("stream %d on %s, want %s", i, resp.GetBackend(), good.Name()))
			}
			require.NoError(t, s.CloseSend())
			if _, err := s.Recv(); err == nil {
				require.Fail(t, fmt.Sprintf("stream %d: Recv after CloseSend: got a message, want io.EOF", i))
			}
		}
		require.False(t, rejected.Load() == 0, "no NewStream was tried on the failing backend: nothing was retried")
		if got := bad.Streams(); got != 0 {
			assert.Fail(t, fmt.Sprintf("failing backend got %d streams, want 0", got))
		}
		if got := good.Streams(); got != streams {
			assert.Fail(t, fmt.Sprintf("healthy backend got %d streams, want %d", got, streams))
		}
		testutil.WaitFor(t, "no active streams", func() bool { return activeStreams(p) == 0 })
		t.Logf("%d streams: %d NewStream failures retried on the other backend", streams, rejected.Load())
	})

	t.Run("mid-stream failure not retried", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 2)
		p, _ := testutil.ReadyPool(t, bs, pool.WithRetry(pol))
		client := echopb.NewEchoClient(p)
		ctx := testutil.Context(t)
		s := testutil.OpenBidi(t, ctx, client, 1)[0]
		require.NoError(t, s.Send(&echopb.EchoRequest{Message: "again"}))
		resp, err := s.Recv()
		require.NoError(t, err)
		for _, b := range bs {
			if b.Name() == resp.GetBackend() {
				b.SetFail(codes.Unavailable)
			}
		}
		require.NoError(t, s.Send(&echopb.EchoRequest{Message: "fails"}))
		if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
			require.Fail(t, fmt.Sprintf("Recv after the backend failed: got %v, want Unavailable", err))
		}
		var streams int64
		for _, b := range bs {
			streams += b.Streams()
		}
		assert.EqualValuesf(t, 1, streams, "servers got %d streams, want 1: a begun stream was retried", streams)
		testutil.WaitFor(t, "no active streams", func() bool { return activeStreams(p) == 0 })
	})

	// The request of a server stream is sent with NewStream: a failure
	// that comes back from the server is not retried either.
	t.Run("server-stream failure not retried", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 2)
		bs[0].SetFail(codes.Unavailable)
		p, _ := testutil.ReadyPool(t, bs, pool.WithRetry(pol))
		client := echopb.NewEchoClient(p)
		ctx := testutil.Context(t)
		const streams = 8
		failed := 0
		for i := range streams {
			s, err := client.ServerStream(ctx, &echopb.EchoRequest{Message: "m", Count: 2})
			require.NoErrorf(t, err, "stream %d: ServerStream: %v", i, err)
			for {
				_, err := s.Recv()
				if err == nil {
					continue
				}
				if status.Code(err) == codes.Unavailable {
					failed++
				} else if !errors.Is(err, io.EOF) {
					assert.Fail(t, fmt.Sprintf("stream %d: Recv: %v", i, err))
				}
				break
			}
		}
		require.False(t, failed == 0, "no stream went to the failing backend")
		got := bs[0].Streams() + bs[1].Streams()
		assert.EqualValuesf(t, streams, got, "servers got %d streams for %d calls, want one each: a begun stream was retried", got, streams)
		t.Logf("%d of %d server streams failed on the failing backend, none retried", failed, streams)
	})
}

// The caller's own cancellation says nothing about the backend: many
// canceled calls and streams leave the breaker closed, while two timeouts
// open it.
func TestResilienceCancelIsNotFailure(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	hole := bs[0]
	hole.SetBlackHole()
	settings := breaker.Settings{ConsecutiveFailures: 2, OpenTimeout: time.Minute}
	p, _ := testutil.ReadyPool(t, bs, pool.WithBreaker(settings))
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)

	for i := range 20 {
		before := hole.Calls()
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := client.Unary(cctx, &echopb.EchoRequest{})
			errc <- err
		}()
		testutil.WaitFor(t, "the call to reach the server", func() bool { return hole.Calls() > before })
		cancel()
		if err := <-errc; status.Code(err) != codes.Canceled {
			require.Fail(t, fmt.Sprintf("call %d: got %v, want Canceled", i, err))
		}
	}
	for i := range 10 {
		before := hole.Calls()
		cctx, cancel := context.WithCancel(ctx)
		s, err := client.Bidi(cctx)
		require.NoErrorf(t, err, "stream %d: %v", i, err)
		testutil.WaitFor(t, "the stream to reach the server", func() bool { return hole.Calls() > before })
		cancel()
		if _, err := s.Recv(); status.Code(err) != codes.Canceled {
			require.Fail(t, fmt.Sprintf("stream %d: got %v, want Canceled", i, err))
		}
	}
	testutil.WaitFor(t, "no active calls or streams", func() bool { return activeCalls(p)+activeStreams(p) == 0 })
	st := testutil.MustFind(t, p, hole.Addr())
	require.Falsef(t, st.Breaker != breaker.StateClosed || st.Failures != 0, "after 30 canceled calls and streams: breaker %v, %d failures; want closed, 0", st.Breaker, st.Failures)

	// The control: two timeouts are failures and open it.
	for range settings.ConsecutiveFailures {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err := client.Unary(cctx, &echopb.EchoRequest{})
		cancel()
		require.EqualValuesf(t, codes.DeadlineExceeded, status.Code(err), "got %v, want DeadlineExceeded", err)
	}
	got := testutil.MustFind(t, p, hole.Addr()).Breaker
	require.EqualValuesf(t, breaker.StateOpen, got, "after %d timeouts: breaker %v, want open", settings.ConsecutiveFailures, got)
}

// Stats reports breaker states. Asked once an open breaker's OpenTimeout
// has passed and before any call was offered to the backend, it must not
// block: reading the state moves the breaker to half-open, and the pool
// hears of that change.
func TestResilienceStatsAfterOpenTimeout(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	bad := bs[0]
	bad.SetFail(codes.Unavailable)
	const openTimeout = 200 * time.Millisecond
	r, target := testutil.ManualTarget(testutil.AddrsOf(bs)...)
	// Not newPool: if Stats deadlocks, Close would block on the same lock
	// and hang the whole test binary; the pool is then left open (a failed
	// test skips the leak check).
	p, err := pool.New(target, pool.WithResolvers(r), pool.WithDialOptions(testutil.Insecure),
		pool.WithBreaker(breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: openTimeout}))
	require.NoError(t, err)
	deadlocked := false
	t.Cleanup(func() {
		if !deadlocked {
			_ = p.Close()
		}
	})
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	testutil.WaitFor(t, "the failing backend's breaker to open", func() bool {
		_, _ = client.Unary(ctx, &echopb.EchoRequest{})
		return testutil.MustFind(t, p, bad.Addr()).Breaker == breaker.StateOpen
	})

	// No calls now: the breaker stays open past its timeout; only the
	// clock can get there.
	time.Sleep(2 * openTimeout)
	done := make(chan pool.Stats, 1)
	go func() { done <- p.Stats() }()
	select {
	case st := <-done:
		for _, b := range st.Backends {
			assert.Falsef(t, b.Addr == bad.Addr() && b.Breaker != breaker.StateHalfOpen, "breaker of the failing backend = %v, want half-open", b.Breaker)
		}
	case <-time.After(5 * time.Second):
		deadlocked = true
		require.Fail(t, "Stats() blocked for 5s after OpenTimeout passed: it holds Pool.mu while breaker.State() delivers the open -> half-open change to breakerChanged, which takes Pool.mu again (goAsync)")
	}
	// And the pool goes on: the next calls reach a backend (the first may
	// be the failing one's half-open probe).
	for i := range 4 {
		_, err := client.Unary(ctx, &echopb.EchoRequest{})
		require.Falsef(t, err != nil && !strings.HasPrefix(status.Convert(err).Message(), "backend b0"), "call %d after Stats: %v", i, err)
	}
}
