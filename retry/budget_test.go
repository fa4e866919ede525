package retry_test

import (
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grpcpool/grpcpool/retry"
)

// drain withdraws until the budget refuses and returns how many retries it
// allowed. It gives up at limit, which the budgets here never reach.
func drain(t *testing.T, b *retry.Budget) int {
	t.Helper()
	const limit = 1_000_000
	for n := range limit {
		if !b.Withdraw() {
			return n
		}
	}
	t.Fatalf("budget allowed %d retries and counting", limit)
	return limit
}

func deposit(b *retry.Budget, n int) {
	for range n {
		b.Deposit()
	}
}

func TestBudgetRatio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := retry.NewBudget(retry.BudgetConfig{}) // 20% + 10/s over 10s
		deposit(b, 1000)
		// ≤ 0.2×1000 + 10×10; equal, since every retry asked for is
		// within the budget until it is used up.
		if got, want := drain(t, b), 300; got != want {
			t.Errorf("retries allowed after 1000 calls = %d, want %d", got, want)
		}
		deposit(b, 10)
		if got, want := drain(t, b), 2; got != want {
			t.Errorf("retries allowed after 10 more calls = %d, want %d", got, want)
		}
	})
}

func TestBudgetConfigs(t *testing.T) {
	tests := []struct {
		name     string
		c        retry.BudgetConfig
		deposits int
		want     int
	}{
		{"floor only, defaults", retry.BudgetConfig{}, 0, 100},
		{"floor only, small", retry.BudgetConfig{MinPerSecond: 5, Window: 2 * time.Second}, 0, 10},
		{"ratio 1", retry.BudgetConfig{Ratio: 1, MinPerSecond: 1, Window: time.Second}, 50, 51},
		{"ratio 0.05", retry.BudgetConfig{Ratio: 0.05, MinPerSecond: 1, Window: 3 * time.Second}, 1000, 53},
		{"window clamped to 1s", retry.BudgetConfig{MinPerSecond: 7, Window: time.Millisecond}, 0, 7},
		{"fractional floor rounds down", retry.BudgetConfig{MinPerSecond: 1, Window: 2500 * time.Millisecond}, 0, 2},
		// NewBudget repairs what Validate rejects rather than panicking.
		{"negative ratio uses default", retry.BudgetConfig{Ratio: -1}, 1000, 300},
		{"NaN ratio uses default", retry.BudgetConfig{Ratio: math.NaN()}, 1000, 300},
		{"ratio above 1 is 1", retry.BudgetConfig{Ratio: 7}, 10, 110},
		{"negative MinPerSecond uses default", retry.BudgetConfig{MinPerSecond: -3}, 0, 100},
		{"negative window uses default", retry.BudgetConfig{Window: -time.Second}, 0, 100},
		{"huge floor", retry.BudgetConfig{MinPerSecond: math.MaxInt, Window: time.Hour}, 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := retry.NewBudget(tt.c)
				deposit(b, tt.deposits)
				if tt.want < 0 { // unbounded in practice
					for range 10000 {
						if !b.Withdraw() {
							t.Fatalf("Withdraw() = false with a huge floor")
						}
					}
					return
				}
				if got := drain(t, b); got != tt.want {
					t.Errorf("retries allowed = %d, want %d", got, tt.want)
				}
			})
		})
	}
}

func TestBudgetWindowSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := retry.NewBudget(retry.BudgetConfig{}) // buckets of 1s
		time.Sleep(500 * time.Millisecond)
		deposit(b, 1000) // in bucket 0: counts until t=10s
		time.Sleep(9 * time.Second)
		for i := range 150 { // t=9.5s, in bucket 9: counts until t=19s
			if !b.Withdraw() {
				t.Fatalf("retry %d at 9.5s refused, want allowed", i+1)
			}
		}
		time.Sleep(time.Second)
		// t=10.5s: the deposits expired, the 150 retries have not: the
		// floor of 100 is more than used up.
		if b.Withdraw() {
			t.Fatalf("retry at 10.5s allowed, want refused (deposits expired)")
		}
		time.Sleep(9 * time.Second)
		// t=19.5s: the retries expired too; only the floor is left.
		if got, want := drain(t, b), 100; got != want {
			t.Errorf("retries allowed at 19.5s = %d, want %d", got, want)
		}
		time.Sleep(time.Hour) // a long idle stretch: everything expired
		deposit(b, 500)
		if got, want := drain(t, b), 200; got != want {
			t.Errorf("retries allowed after an idle hour and 500 calls = %d, want %d", got, want)
		}
	})
}

// TestBudgetSlidingBound runs a minute of bursty random traffic with greedy
// retries and checks the documented bound whenever a retry is allowed: the
// retries of the last 0.9×Window (which all still count against the
// budget) never exceed Ratio × the calls of the last Window (the most that
// can still count for it) plus the floor.
func TestBudgetSlidingBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			ratio  = 0.2
			floor  = 3 * 5 // MinPerSecond × Window
			window = 5 * time.Second
			step   = 37 * time.Millisecond
		)
		b := retry.NewBudget(retry.BudgetConfig{Ratio: ratio, MinPerSecond: 3, Window: window})
		var callTimes, retryTimes []time.Time // in time order
		// count returns how many of times are in (from, to].
		count := func(times []time.Time, from, to time.Time) int {
			after := func(t time.Time) int {
				return sort.Search(len(times), func(i int) bool { return times[i].After(t) })
			}
			return after(to) - after(from)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var totalCalls, retries int
		for start := time.Now(); time.Since(start) < time.Minute; {
			at := time.Now()
			calls := rng.IntN(3)
			if time.Since(start)%(7*time.Second) < 300*time.Millisecond {
				calls = 100 + rng.IntN(100) // a burst, then a quiet stretch
			}
			for range calls {
				b.Deposit()
				callTimes = append(callTimes, at)
				totalCalls++
			}
			allowed := 0
			for range rng.IntN(12) {
				if b.Withdraw() {
					retryTimes = append(retryTimes, at)
					allowed++
				}
			}
			retries += allowed
			if allowed == 0 {
				// The bound holds when a retry is allowed; later, as
				// calls expire, the retries they paid for may exceed it
				// until those expire too, and no retry is allowed
				// meanwhile.
				time.Sleep(step)
				continue
			}
			r := count(retryTimes, at.Add(-window*9/10), at)
			c := count(callTimes, at.Add(-window), at)
			if limit := ratio*float64(c) + floor; float64(r) > limit {
				t.Fatalf("at %v: %d retries in the last %v, want at most %v (%d calls in the last %v)",
					at.Sub(start), r, window*9/10, limit, c, window)
			}
			time.Sleep(step)
		}
		// The budget was the limit, not the traffic: most retries asked
		// for were refused, and the budget was used.
		if min := int(ratio * float64(totalCalls)); retries < min {
			t.Errorf("%d retries for %d calls, want at least %d", retries, totalCalls, min)
		}
		t.Logf("%d calls, %d retries", totalCalls, retries)
	})
}

func TestBudgetConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := retry.NewBudget(retry.BudgetConfig{})
		const goroutines, calls = 8, 2000
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for range calls {
					b.Deposit()
					for range 3 {
						if b.Withdraw() {
							allowed.Add(1)
						}
					}
				}
			})
		}
		wg.Wait()
		limit := int64(0.2*goroutines*calls) + 100
		got := allowed.Load() + int64(drain(t, b)) // what is left is still there
		if got != limit {
			t.Errorf("retries allowed = %d, want %d", got, limit)
		}
	})
}

func TestBudgetDisabled(t *testing.T) {
	for _, b := range []*retry.Budget{nil, retry.NewBudget(retry.BudgetConfig{Disabled: true})} {
		b.Deposit()
		for range 10000 {
			if !b.Withdraw() {
				t.Fatalf("Withdraw() on %v budget = false, want true", b)
			}
		}
	}
}

func TestBudgetAllocs(t *testing.T) {
	b := retry.NewBudget(retry.BudgetConfig{})
	if n := testing.AllocsPerRun(1000, func() { b.Deposit(); b.Withdraw() }); n != 0 {
		t.Errorf("Deposit+Withdraw allocs = %v, want 0", n)
	}
}

// BenchmarkBudget measures one Deposit and one Withdraw per call, from
// GOMAXPROCS goroutines sharing a budget, as a pool's calls do. Baseline:
// BenchmarkBudgetBaselineAtomic, the same goroutines adding to one shared
// atomic counter (the least any shared budget can cost).
func BenchmarkBudget(b *testing.B) {
	budget := retry.NewBudget(retry.BudgetConfig{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			budget.Deposit()
			budget.Withdraw()
		}
	})
}

func BenchmarkBudgetBaselineAtomic(b *testing.B) {
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Add(1)
			n.Add(-1)
		}
	})
}

func BenchmarkBudgetDeposit(b *testing.B) {
	budget := retry.NewBudget(retry.BudgetConfig{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			budget.Deposit()
		}
	})
}

// BenchmarkBudgetWithdraw measures Withdraw on a budget that has plenty
// (ratio 1, one deposit per withdraw) so that every call succeeds.
func BenchmarkBudgetWithdraw(b *testing.B) {
	budget := retry.NewBudget(retry.BudgetConfig{Ratio: 1})
	for range b.N {
		budget.Deposit()
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			budget.Withdraw()
		}
	})
}
