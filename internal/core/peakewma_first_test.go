package core

import (
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// A backend never observed and not yet seeded has no estimate while its
// first call is in flight, however old the pool: it is not raised to the
// time since a last call it never had. The same holds in the instant
// between a first estimate's value and its time being stored (Observe and
// seed store the value first): its time is not yet there to measure from.
func TestPeakEWMAFirstCallInFlightHasNoEstimate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, Policy: PeakEWMA})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b")) })
		f.readyAll()
		time.Sleep(time.Hour) // an old pool
		b := f.backend("b")
		b.Calls.Add(1) // its first call, in flight
		defer b.Calls.Add(-1)
		now := f.k.clock.now()
		require.Zero(t, estimateOf(b, now), "never observed, not seeded")

		// A first Observe (or seed) between its two stores.
		b.ewma.est.Store(math.Float64bits(float64(time.Millisecond)))
		require.LessOrEqual(t, estimateOf(b, now), float64(time.Millisecond),
			"the estimate stored, its time not yet: got %v, not the pool's age", time.Duration(estimateOf(b, now)))
	})
}
