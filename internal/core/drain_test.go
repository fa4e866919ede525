package core_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest"
)

// Picks race retirements: the core retires the connection again and again
// while callers pick and release on it. Every retired connection closes,
// with no drain timeout to cut it: a pick whose Acquire lost to the
// retirement never leaves it draining with nothing in flight, unreported.
func TestPicksRacingARetirementLeaveNothingUndrained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1})
		f.Resolve("a")
		a := f.Backend("a")
		var stop atomic.Bool
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for !stop.Load() {
					r, o := f.Picker().Pick(core.PickInfo{})
					if o != core.Picked {
						continue
					}
					if c := r.Conn; c.Release() {
						f.Do(func(k *core.Core, now time.Time) { k.Drained(now, c) })
					}
				}
			})
		}
		for range 10000 {
			f.Do(func(k *core.Core, now time.Time) { k.Retire(now, a.Conns()[0], "test") })
			f.ReadyAll()
		}
		stop.Store(true)
		wg.Wait()
		requireNoneDraining(t, f, "a")
	})
}
