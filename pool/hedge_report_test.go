package pool

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcpool/grpcpool/example/echopb"
	echobackend "github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/hedging"
	"github.com/grpcpool/grpcpool/retry"
)

// hedgeFleet is loopback Echo backends whose unary calls can be made
// slow, each with a raw *grpc.ClientConn, driven by the hedging engine as
// the pool's Invoke will drive it: attempt n of a call goes to the n-th
// backend after the one the call started on (never one already tried).
type hedgeFleet struct {
	servers []*echobackend.Server
	ccs     []*grpc.ClientConn

	// slowP is the chance (×1e6) that an attempt gets slowExtra more
	// latency on its server; allSlow, when not 0, is a latency every
	// attempt gets instead.
	slowP     atomic.Int64
	slowExtra time.Duration
	allSlow   atomic.Int64

	next     atomic.Uint64 // the backend the next call starts on
	attempts atomic.Int64  // attempts made by call (client side)
	received atomic.Int64  // unary calls the servers received
}

func newHedgeFleet(t *testing.T, n int) *hedgeFleet {
	t.Helper()
	f := &hedgeFleet{slowExtra: 100 * time.Millisecond}
	slow := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		f.received.Add(1)
		d := time.Duration(f.allSlow.Load())
		if d == 0 && rand.Int64N(1e6) < f.slowP.Load() {
			d = f.slowExtra
		}
		if d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return handler(ctx, req)
	}
	for i := range n {
		s, err := echobackend.Listen(echobackend.Options{Name: fmt.Sprintf("b%d", i), ServerOptions: []grpc.ServerOption{grpc.UnaryInterceptor(slow)}})
		require.NoError(t, err)
		t.Cleanup(s.Stop)
		f.servers = append(f.servers, s)
		cc, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = cc.Close() })
		f.ccs = append(f.ccs, cc)
	}
	return f
}

// call makes one hedged call (one attempt if mc has no hedging) on the
// raw connections.
func (f *hedgeFleet) call(ctx context.Context, mc retry.MethodConfig, budget *retry.Budget, onHedge func(bool)) error {
	first := f.next.Add(1)
	budget.Deposit()
	return hedging.Do(ctx, hedging.Call{
		Config:  mc,
		Budget:  budget,
		OnHedge: onHedge,
		Attempt: func(ctx context.Context, n int, reply any, admit func() bool) error {
			if n > len(f.ccs) || admit != nil && !admit() {
				return hedging.ErrNotSent
			}
			f.attempts.Add(1)
			cc := f.ccs[(first+uint64(n-1))%uint64(len(f.ccs))]
			return cc.Invoke(ctx, echopb.Echo_Unary_FullMethodName, &echopb.EchoRequest{Message: "x"}, reply)
		},
	}, &echopb.EchoResponse{})
}

// serverAttempts is the unary calls the servers received, slowed or not.
func (f *hedgeFleet) serverAttempts() int64 { return f.received.Load() }

// hedgeRunStats is what one run of calls measured.
type hedgeRunStats struct {
	calls, attempts, refused int
	failed                   int
	lastErr                  error
	lat                      []time.Duration // sorted
	delay                    time.Duration   // the method's delay at the end
}

func (s hedgeRunStats) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := min(int(p/100*float64(len(s.lat))), len(s.lat)-1)
	return s.lat[i]
}

// run makes calls hedged calls on the raw connections from goroutines
// goroutines, or as many as fit in dur if dur > 0.
func (f *hedgeFleet) run(ctx context.Context, mc retry.MethodConfig, budget *retry.Budget, goroutines, calls int, dur time.Duration) hedgeRunStats {
	st := runCalls(ctx, goroutines, calls, dur, f.attempts.Load, func(ctx context.Context, onHedge func(bool)) error {
		return f.call(ctx, mc, budget, onHedge)
	})
	st.delay = mc.HedgingDelay()
	return st
}

// runCalls makes calls calls from goroutines goroutines, or as many as fit
// in dur if dur > 0, and measures them; attempts counts the attempts made
// so far.
func runCalls(ctx context.Context, goroutines, calls int, dur time.Duration, attempts func() int64, call func(ctx context.Context, onHedge func(bool)) error) hedgeRunStats {
	var (
		mu      sync.Mutex
		st      hedgeRunStats
		left    atomic.Int64
		refused atomic.Int64
		wg      sync.WaitGroup
	)
	left.Store(int64(calls))
	a0 := attempts()
	end := time.Now().Add(dur)
	onHedge := func(r bool) {
		if r {
			refused.Add(1)
		}
	}
	for range goroutines {
		wg.Go(func() {
			for ctx.Err() == nil {
				if dur > 0 && time.Now().After(end) || dur == 0 && left.Add(-1) < 0 {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				start := time.Now()
				err := call(cctx, onHedge)
				d := time.Since(start)
				cancel()
				mu.Lock()
				st.calls++
				st.lat = append(st.lat, d)
				if err != nil {
					st.failed++
					st.lastErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st.attempts = int(attempts() - a0)
	st.refused = int(refused.Load())
	slices.Sort(st.lat)
	return st
}

func methodConfig(t *testing.T, h *retry.Hedging) retry.MethodConfig {
	t.Helper()
	if h == nil {
		return retry.MethodConfig{}
	}
	h.Methods = []string{"/" + echopb.Echo_ServiceDesc.ServiceName + "/"}
	r, err := retry.NewResolver(nil, []retry.Hedging{*h})
	require.NoError(t, err)
	return r.Lookup(echopb.Echo_Unary_FullMethodName)
}

// Every backend slow: the hedges a fresh budget allows are at most its
// Ratio of the calls plus its floor, however many calls find their
// first attempt slow. Real servers on loopback; the bound is the budget's
// arithmetic, not a timing.
func TestHedgeSlowFleetWithinBudget(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	f := newHedgeFleet(t, 4)
	f.allSlow.Store(int64(20 * time.Millisecond))
	cfg := retry.BudgetConfig{Ratio: 0.2, MinPerSecond: 1, Window: 10 * time.Second} // floor: 10 retries
	budget := retry.NewBudget(cfg)
	mc := methodConfig(t, &retry.Hedging{Delay: 2 * time.Millisecond, MaxAttempts: 4})

	st := f.run(ctx, mc, budget, 8, 200, 0)
	require.Zero(t, st.failed, "last error: %v", st.lastErr)
	hedges := st.attempts - st.calls
	bound := int(cfg.Ratio*float64(st.calls)) + 10
	t.Logf("%d calls, %d attempts (%d hedges, bound %d), %d refused", st.calls, st.attempts, hedges, bound, st.refused)
	assert.LessOrEqual(t, hedges, bound, "hedges beyond the budget")
	assert.Positive(t, hedges, "no hedge at all: the budget's floor allows some")
	assert.Positive(t, st.refused, "the budget refused no hedge although every call was slow")
}

// TestHedgeReport prints the tables of docs/resilience.md ("Hedging,
// measured"). It runs only when GRPCPOOL_REPORT is set (about 30 s):
//
//	GRPCPOOL_REPORT=1 go test -run TestHedgeReport -count=1 -v ./pool/
func TestHedgeReport(t *testing.T) {
	if os.Getenv("GRPCPOOL_REPORT") == "" {
		t.Skip("set GRPCPOOL_REPORT=1 to print the hedging tables")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	const goroutines, calls = 8, 4000
	f := newHedgeFleet(t, 4)
	f.slowP.Store(50_000) // 5 %
	warm := func() { f.run(ctx, retry.MethodConfig{}, nil, goroutines, 400, 0) }
	warm()

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
	fmt.Fprintf(&b, "== 4 backends, every attempt has a 5%% chance of +100ms on its server; %d calls from %d goroutines, MaxAttempts 2, default budget ==\n", calls, goroutines)
	fmt.Fprintln(tw, "hedging\tdelay at end\tp50\tp90\tp95\tp99\tp99.9\textra attempts\trefused\tfailed")
	rows := []struct {
		name string
		h    *retry.Hedging
	}{
		{"none", nil},
		{"fixed 2ms", &retry.Hedging{Delay: 2 * time.Millisecond}},
		{"fixed 5ms", &retry.Hedging{Delay: 5 * time.Millisecond}},
		{"fixed 20ms", &retry.Hedging{Delay: 20 * time.Millisecond}},
		{"adaptive p90", &retry.Hedging{Percentile: 90}},
		{"adaptive p95", &retry.Hedging{Percentile: 95}},
	}
	for _, r := range rows {
		mc := methodConfig(t, r.h)
		st := f.run(ctx, mc, retry.NewBudget(retry.BudgetConfig{}), goroutines, calls, 0)
		delay := "-"
		if r.h != nil {
			delay = fmtDur(st.delay)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f%%\t%d\t%d\n", r.name, delay,
			fmtDur(st.pct(50)), fmtDur(st.pct(90)), fmtDur(st.pct(95)), fmtDur(st.pct(99)), fmtDur(st.pct(99.9)),
			100*float64(st.attempts-st.calls)/float64(st.calls), st.refused, st.failed)
	}
	require.NoError(t, tw.Flush())

	// The same through the pool: Invoke without hedging, and invokeHedged
	// (what Invoke calls for a hedged method), attempts counted on the
	// servers.
	fmt.Fprintf(&b, "\n== the same through the pool (RoundRobin, 1 connection per backend, WithRetry default): Invoke, and invokeHedged ==\n")
	tw = tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "hedging\tdelay at end\tp50\tp90\tp95\tp99\tp99.9\textra attempts\tfailed")
	for _, r := range rows {
		if r.h != nil && r.h.Delay != 2*time.Millisecond && r.h.Percentile != 95 {
			continue
		}
		mc := methodConfig(t, r.h)
		p := newHedgePool(ctx, t, addrsOf(f.servers), WithRetry(retry.Policy{}))
		method := echopb.Echo_Unary_FullMethodName
		st := runCalls(ctx, goroutines, calls, 0, f.serverAttempts, func(ctx context.Context, _ func(bool)) error {
			req, reply := &echopb.EchoRequest{Message: "x"}, &echopb.EchoResponse{}
			if mc.Hedging == nil {
				return p.Invoke(ctx, method, req, reply)
			}
			return invokeHedged(ctx, p, mc, method, req, reply)
		})
		require.NoError(t, p.Close())
		delay := "-"
		if r.h != nil {
			delay = fmtDur(mc.HedgingDelay())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f%%\t%d\n", r.name, delay,
			fmtDur(st.pct(50)), fmtDur(st.pct(90)), fmtDur(st.pct(95)), fmtDur(st.pct(99)), fmtDur(st.pct(99.9)),
			100*float64(st.attempts-st.calls)/float64(st.calls), st.failed)
	}
	require.NoError(t, tw.Flush())

	// Every backend slow for 2 s (every attempt +50ms), hedging at a
	// fixed 2ms or adaptive p95, with a budget that is fresh or has
	// seen 3 s of normal traffic.
	fmt.Fprintf(&b, "\n== every backend +50ms on every attempt for 2s; %d goroutines, MaxAttempts 2, default budget (0.2 × calls + 100 per 10s) ==\n", 4*goroutines)
	tw = tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "hedging\tbudget\tcalls before\tcalls slow\tattempts slow\tattempts/call slow\tattempts/call, whole run\tbound, whole run\trefused")
	for _, r := range []struct {
		name string
		h    retry.Hedging
		warm bool
	}{
		{"fixed 2ms", retry.Hedging{Delay: 2 * time.Millisecond}, false},
		{"fixed 2ms", retry.Hedging{Delay: 2 * time.Millisecond}, true},
		{"adaptive p95", retry.Hedging{Percentile: 95}, false},
		{"adaptive p95", retry.Hedging{Percentile: 95}, true},
	} {
		mc := methodConfig(t, &r.h)
		budget := retry.NewBudget(retry.BudgetConfig{})
		var before hedgeRunStats
		state := "fresh"
		if r.warm {
			state = "after 3s normal"
			before = f.run(ctx, mc, budget, 4*goroutines, 0, 3*time.Second)
		}
		f.allSlow.Store(int64(50 * time.Millisecond))
		slow := f.run(ctx, mc, budget, 4*goroutines, 0, 2*time.Second)
		f.allSlow.Store(0)
		calls, attempts := before.calls+slow.calls, before.attempts+slow.attempts
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%d\n", r.name, state, before.calls, slow.calls, slow.attempts,
			float64(slow.attempts)/float64(slow.calls), float64(attempts)/float64(calls),
			(1.2*float64(calls)+100)/float64(calls), slow.refused)
	}
	require.NoError(t, tw.Flush())
	t.Log("\n" + b.String())
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.3fms", float64(d)/1e6)
}
