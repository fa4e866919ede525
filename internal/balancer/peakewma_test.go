package balancer

import (
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
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

func ewmaFleet(t *testing.T) *fakeSeam {
	f := newFake(t, Config{Size: 1, Policy: PeakEWMA})
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
