package core

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Picks race retirements: the core retires the connection again and again
// while callers pick and release on it. Every retired connection closes,
// with no drain timeout to cut it: a pick whose Acquire lost to the
// retirement never leaves it draining with nothing in flight, unreported.
func TestPicksRacingARetirementLeaveNothingUndrained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		f.readyAll()
		var stop atomic.Bool
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for !stop.Load() {
					r, o := f.picker().Pick(PickInfo{})
					if o != Picked {
						continue
					}
					if c := r.Conn; c.Release() {
						f.do(func(k *Core, now time.Time) { k.Drained(now, c) })
					}
				}
			})
		}
		for range 10000 {
			f.do(func(k *Core, now time.Time) { k.Retire(now, k.backends["a"].conns[0], "test") })
			f.readyAll()
		}
		stop.Store(true)
		wg.Wait()
		requireNoneDraining(t, f, "a")
	})
}
