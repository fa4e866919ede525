package core_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest"
)

// Overflow picks race retirements: the backend is at its stream limit and
// cannot grow, so every pick overflows (Acquire, not AcquireWithin) while
// the core retires the connection again and again. With no drain timeout,
// every retired connection still closes once its calls end: none is left
// draining with nothing in flight and nobody to report it drained.
func TestOverflowPicksRacingARetirementLeaveNothingUndrained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, MaxSize: 1, MaxStreams: 1})
		f.Resolve("a")
		a := f.Backend("a")
		release := func(c *core.Conn) {
			if c.Release() {
				f.Do(func(k *core.Core, now time.Time) { k.Drained(now, c) })
			}
		}
		var stop atomic.Bool
		var overflowed atomic.Int64
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				var held *core.Conn // each caller holds a call until its next one: the connection is full
				for ; !stop.Load(); runtime.Gosched() {
					r, o := f.Picker().Pick(core.PickInfo{})
					if o != core.Picked {
						continue
					}
					if r.Overflow {
						overflowed.Add(1)
					}
					if held != nil {
						release(held)
					}
					held = r.Conn
				}
				if held != nil {
					release(held)
				}
			})
		}
		for range 5000 {
			f.Do(func(k *core.Core, now time.Time) { k.Retire(now, a.Conns()[0], "test") })
			f.ReadyAll()
			// Let the callers pick while the connection is READY, however
			// few Ps run them: every goroutine yields after each step, so
			// with one P the callers are not preempted only while no
			// connection is READY, nor this loop starved by their spinning.
			runtime.Gosched()
		}
		stop.Store(true)
		wg.Wait()
		require.Positive(t, overflowed.Load(), "no pick overflowed")
		requireNoneDraining(t, f, "a")
		t.Logf("%d picks overflowed", overflowed.Load())
	})
}

// requireNoneDraining fails the test if a connection of the backend at key
// is still draining: with every call ended and no drain timeout, each
// retired connection must have closed.
func requireNoneDraining(t *testing.T, f *coretest.Fake, key string) {
	t.Helper()
	var stuck []uint64
	for _, c := range f.Conns(f.Backend(key)) {
		if c.State() == core.Draining {
			stuck = append(stuck, c.ID)
		}
	}
	require.Emptyf(t, stuck, "draining connections with nothing in flight: %v", stuck)
}
