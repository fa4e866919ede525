package core

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/coretest/record"
)

// ewmaRun makes calls one after another on a fake PeakEWMA core with four
// backends; each call takes the latency lat gives its backend (on the
// bubble's clock) and reports it, or a failure, through Observe. It
// returns the calls per backend.
func ewmaRun(t *testing.T, f *fakeSeam, calls int, lat func(key string) (time.Duration, bool)) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range calls {
		r, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Picked, o)
		b := r.Conn.Backend
		got[b.Key]++
		b.Calls.Add(1)
		d, failed := lat(b.Key)
		time.Sleep(d)
		b.Calls.Add(-1)
		r.Conn.Release()
		b.Observe(d, failed, 0)
	}
	return got
}

func ewmaFleet(t *testing.T) *fakeSeam { return ewmaFleetWith(t, nil) }

// ewmaFleetWith is ewmaFleet with the randomness r (nil: the fake's).
func ewmaFleetWith(t *testing.T, r func() uint64) *fakeSeam {
	f := newFake(t, Config{Size: 1, Policy: PeakEWMA, Rand: r})
	f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b", "c", "slow")) })
	f.readyAll()
	return f
}

// One sequential caller sees no load anywhere, but the backend 20 ms
// slower than the others gets at most 5 % of the calls; a backend that
// fails fast (Unavailable in 100 µs), which looks idle to LeastActive,
// gets at most 1 %: each failure counts as the penalty latency.
func TestPeakEWMAAvoidsABadBackend(t *testing.T) {
	for _, tt := range []struct {
		name     string
		lat      time.Duration
		failed   bool
		maxShare float64
	}{
		{"slow", 21 * time.Millisecond, false, 0.05},
		{"failing fast", 100 * time.Microsecond, true, 0.01},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := ewmaFleet(t)
				const calls = 3000
				got := ewmaRun(t, f, calls, func(key string) (time.Duration, bool) {
					if key == "slow" {
						return tt.lat, tt.failed
					}
					return time.Millisecond, false
				})
				t.Logf("calls per backend: %v", got)
				require.LessOrEqual(t, float64(got["slow"])/calls, tt.maxShare, "%v", got)
				for _, k := range []string{"a", "b", "c"} {
					require.Greater(t, got[k], calls/5, "the good backends share the calls: %v", got)
				}
			})
		})
	}
}

// A failure with the server's pushback is recorded as the pushback; the
// estimate decays with time constant τ while the backend is not called.
func TestPeakEWMAPushbackAndDecay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := ewmaFleet(t)
		b := f.backend("a")
		b.Observe(time.Millisecond, true, 200*time.Millisecond)
		now := f.k.clock.now()
		require.InDelta(t, float64(200*time.Millisecond), b.ewma.estimate(now), 1)
		time.Sleep(DefaultEWMADecay)
		require.InDelta(t, float64(200*time.Millisecond)/math.E, b.ewma.estimate(f.k.clock.now()), 1e3)
		// A latency below the estimate moves it by 1 − e^(−Δt/τ).
		b.Observe(0, false, 0)
		require.InDelta(t, float64(200*time.Millisecond)/math.E, b.ewma.estimate(f.k.clock.now()), 1e3)
		c := f.backend("b")
		c.Observe(5*time.Millisecond, false, 0)
		c.Observe(9*time.Millisecond, false, 0)
		require.InDelta(t, float64(9*time.Millisecond), c.ewma.estimate(f.k.clock.now()), 1, "a peak replaces the estimate")
	})
}

// A backend added to a fleet with estimates is seeded with their median:
// it is neither free (0) nor starved.
func TestPeakEWMASeedsNewBackendsWithTheMedian(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := ewmaFleet(t)
		for i, key := range []string{"a", "b", "c", "slow"} {
			f.backend(key).Observe(time.Duration(i+1)*time.Millisecond, false, 0)
		}
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b", "c", "slow", "new")) })
		f.readyAll()
		nb := f.backend("new")
		require.InDelta(t, float64(2500*time.Microsecond), nb.ewma.estimate(f.k.clock.now()), 1)
	})
}

// 32 callers arrive over 320 µs, 1 ms after the last calls, and the
// backend that turns 50 ms slower had the quietest estimate (the others'
// carry a 5 ms peak): until its first slow call ends nothing reports it
// slow, but the time since its last call ended, with calls in flight,
// does. At most 1 % of the calls go to it.
func TestPeakEWMASeesASlowBackendBeforeItsCallsEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := ewmaFleetWith(t, record.Seeded(3)) // safe for the 32 callers
		for _, k := range []string{"a", "b", "c"} {
			f.backend(k).Observe(5*time.Millisecond, false, 0)
		}
		f.backend("slow").Observe(100*time.Microsecond, false, 0)
		time.Sleep(time.Millisecond)
		const calls = 3000
		var bad, next atomic.Int64
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				time.Sleep(time.Duration(i) * 10 * time.Microsecond)
				for next.Add(1) <= calls {
					r, o := f.picker().Pick(PickInfo{})
					if o != Picked {
						assert.Fail(t, "not picked")
						return
					}
					b := r.Conn.Backend
					b.Calls.Add(1)
					d := 300 * time.Microsecond
					if b.Key == "slow" {
						d = 50 * time.Millisecond
						bad.Add(1)
					}
					time.Sleep(d)
					b.Calls.Add(-1)
					r.Conn.Release()
					b.Observe(d, false, 0)
				}
			})
		}
		wg.Wait()
		t.Logf("%d of %d calls on the slow backend", bad.Load(), calls)
		require.LessOrEqual(t, float64(bad.Load())/calls, 0.01)
	})
}

// A backend never observed and not seeded (no backend had an estimate
// when it joined) has no estimate while its first call is in flight, not
// one as long as the pool's age: it is no outlier, and a pick compares it
// by load with a backend whose estimate is 5 ms.
func TestPeakEWMAUnobservedBackendIsNoOutlierDuringItsFirstCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, Policy: PeakEWMA})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b")) })
		f.readyAll()
		time.Sleep(time.Minute)
		a, b := f.backend("a"), f.backend("b")
		a.Observe(5*time.Millisecond, false, 0)
		b.Calls.Add(1) // b's first call, in flight
		require.True(t, b.conns[0].Acquire())
		time.Sleep(time.Millisecond)
		r, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Picked, o)
		require.Equal(t, "b", r.Conn.Backend.Key, "b, with no estimate and a call in flight, is not an outlier of the pool's age")
	})
}
