package core

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/connectivity"

	"github.com/grpcpool/grpcpool/breaker"
)

// withBreakers gives every backend of cfg a breaker with the default
// settings whose changes reach the Core as the pool's do.
func withBreakers(t *testing.T, cfg Config, f **fakeSeam) Config {
	t.Helper()
	cfg.NewBreaker = func(b *Backend) *breaker.Breaker {
		brk, err := breaker.New(b.Key, breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: time.Second}, func(_ string, _, to breaker.State) {
			b.StoreBreakerState(to)
			go (*f).do(func(k *Core, now time.Time) { k.BreakerChanged(now, b) })
		})
		require.NoError(t, err)
		return brk
	}
	return cfg
}

// A recycle retires the connection it replaces in the event that makes
// the replacement ready, before the next picker is published: a pick from
// the picker of that moment finds its only connection retired. It waits
// for the next picker, which is certain to come, and never fails — with
// breakers, whose breakers are all closed, it used to fail saying they
// refused the call.
func TestPickOnAConnectionRetiredUnderItWaitsForTheNextPicker(t *testing.T) {
	for _, brk := range []bool{false, true} {
		t.Run(map[bool]string{false: "no breaker", true: "breaker"}[brk], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var f *fakeSeam
				cfg := Config{Size: 1, MaxConnAge: time.Minute}
				if brk {
					cfg = withBreakers(t, cfg, &f)
				}
				f = newFake(t, cfg)
				f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
				f.readyAll()
				time.Sleep(time.Minute) // the connection's age: its replacement is dialed
				synctest.Wait()
				b := f.backend("a")
				p := f.picker()
				var o Outcome
				var replacement *Conn
				f.do(func(k *Core, now time.Time) {
					replacement = b.conns[1]
					k.ConnState(now, replacement, connectivity.Ready, nil) // retires the old one
					_, o = p.Pick(PickInfo{})
				})
				require.Equalf(t, Wait, o, "got %v, want Wait (fail error: %v)", o, p.FailErr())
				require.True(t, p.Stale(), "the picker the pick waits on is replaced")
				r, o := f.picker().Pick(PickInfo{})
				require.Equal(t, Picked, o)
				require.Same(t, replacement, r.Conn)
			})
		})
	}
}

// Picks racing for the last slot under a stream cap of 1 (one backend of
// one connection that may not grow): each takes the slot or, finding it
// full, overflows. A pick that lost the race and then finds room picks
// again; it never waits on a picker nothing replaces, nor fails naming the
// breakers.
func TestPickThatLosesTheRaceForTheLastSlotPicksAgain(t *testing.T) {
	for _, brk := range []bool{false, true} {
		t.Run(map[bool]string{false: "no breaker", true: "breaker"}[brk], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var f *fakeSeam
				cfg := Config{Size: 1, MaxSize: 1, MaxStreams: 1}
				if brk {
					cfg = withBreakers(t, cfg, &f)
				}
				f = newFake(t, cfg)
				f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
				f.readyAll()
				p := f.picker()
				var wrong atomic.Int64
				var first sync.Once
				var firstWrong Outcome
				var wg sync.WaitGroup
				for range 4 {
					wg.Go(func() {
						for range 20000 {
							r, o := p.Pick(PickInfo{})
							if o != Picked {
								wrong.Add(1)
								first.Do(func() { firstWrong = o })
								continue
							}
							r.Conn.Release()
							if r.Done != nil {
								r.Done(nil)
							}
						}
					})
				}
				wg.Wait()
				require.Zerof(t, wrong.Load(), "picks not placed: %d, the first %v", wrong.Load(), firstWrong)
				require.False(t, p.Stale(), "nothing changed: no picker was published")
			})
		})
	}
}

// Three full backends (caps of 1, no growth), the least loaded of them
// half-open with its probe in flight: a call that overflows goes to the
// next least-loaded backend whose breaker admits it.
func TestOverflowPassesOverAHalfOpenBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f *fakeSeam
		f = newFake(t, withBreakers(t, Config{Size: 1, MaxSize: 1, MaxStreams: 1}, &f))
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("h", "a", "b")) })
		f.readyAll()
		h := f.backend("h")
		halfOpen(t, h)
		// The probe: one call on h, in flight.
		hold := func(key string) {
			t.Helper()
			b := f.backend(key)
			c := b.conns[0]
			require.True(t, c.Acquire())
		}
		// The probe's Allow moves gobreaker to half-open; that change
		// reaches the Core on a goroutine, as the pool's event queue
		// does, and publishes a picker. A pick from the picker before it
		// waits for it (Wait, as a stale picker should): let the change
		// land first.
		probe, err := h.Breaker.Allow()
		require.NoError(t, err)
		defer probe(nil)
		synctest.Wait()
		hold("h")
		for range 2 { // a and b carry two calls each: h is the least loaded
			hold("a")
			hold("b")
		}
		for i := range 6 {
			r, o := f.picker().Pick(PickInfo{})
			require.Equalf(t, Picked, o, "call %d: got %v, want Picked (%v)", i, o, f.picker().FailErr())
			require.True(t, r.Overflow)
			require.NotEqual(t, "h", r.Conn.Backend.Key, "call %d", i)
			if r.Done != nil {
				defer r.Done(nil)
			}
			defer r.Conn.Release()
		}
	})
}
