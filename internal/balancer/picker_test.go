package balancer

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/breaker"
)

// openStreams acquires n never-ending calls through the current picker
// and counts them per backend, as LeastActive sees them.
func openStreams(t *testing.T, f *fakeSeam, n int) {
	t.Helper()
	for range n {
		r, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Picked, o)
		r.Conn.Backend.Streams.Add(1)
	}
}

func loads(f *fakeSeam, keys ...string) []int64 {
	out := make([]int64, len(keys))
	for i, k := range keys {
		out[i] = f.backend(k).Streams.Load()
	}
	return out
}

// LeastActive is exact: after 3 backends join 3 that carry 300 streams,
// the next 300 streams even the fleet out completely.
func TestLeastActiveIsExactAfterScaleUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 2, Policy: LeastActive})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b", "c")) })
		f.readyAll()
		openStreams(t, f, 300)
		require.Equal(t, []int64{100, 100, 100}, loads(f, "a", "b", "c"))
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b", "c", "d", "e", "f")) })
		f.readyAll()
		openStreams(t, f, 300)
		require.Equal(t, []int64{100, 100, 100, 100, 100, 100}, loads(f, "a", "b", "c", "d", "e", "f"))
	})
}

// 60 backends (the exact scan) with 10 streams each: exact.
func TestLeastActiveIsExactOverSixtyBackends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, Policy: LeastActive})
		keys := make([]string, 60)
		for i := range keys {
			keys[i] = fmt.Sprintf("b%03d", i)
		}
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf(keys...)) })
		f.readyAll()
		openStreams(t, f, 600)
		for i, l := range loads(f, keys...) {
			require.EqualValues(t, 10, l, "backend %d", i)
		}
	})
}

// Review item 3: with weights 1:10 and the heavy backend refusing (its
// breaker's probe is out), every call goes to the light one; a retry goes
// to a backend not tried yet.
func TestWeightedRoundRobinTriesEveryDistinctBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, NewBreaker: func(b *Backend) *breaker.Breaker {
			brk, err := breaker.New(b.Key, breaker.Settings{}, nil)
			require.NoError(t, err)
			return brk
		}})
		gs := groupsOf("light", "heavy")
		gs[1].Weight = 10
		f.do(func(k *Core, now time.Time) { k.Resolved(now, gs) })
		f.readyAll()
		heavy := f.backend("heavy")
		// Hold the heavy backend's breaker half-open with its probe out.
		heavy.StoreBreakerState(breaker.StateHalfOpen)
		f.do(func(k *Core, now time.Time) { k.BreakerChanged(now, heavy) })
		light := 0
		for range 100 {
			r, o := f.picker().Pick(PickInfo{})
			require.Equal(t, Picked, o)
			if r.Conn.Backend.Key == "light" {
				light++
			}
			r.Conn.Release()
			if r.Done != nil {
				r.Done(nil)
			}
		}
		require.Positive(t, light)
		var tr Tried
		tr.Add(f.backend("light"))
		for range 20 {
			r, o := f.picker().Pick(PickInfo{Tried: &tr})
			require.Equal(t, Picked, o)
			require.Equal(t, "heavy", r.Conn.Backend.Key, "a retry goes to the backend not tried")
			r.Conn.Release()
		}
	})
}

// Review item 12: a key whose owner is still making its first connection
// waits for it rather than going to another backend.
func TestConsistentHashWaitsForStartingOwner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, Policy: ConsistentHash})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b", "c")) })
		b := f.backend("b")
		f.do(func(k *Core, now time.Time) {
			for _, key := range []string{"a", "c"} {
				k.ConnState(now, k.backends[key].conns[0], 2 /* READY */, nil)
			}
		})
		// Find a key owned by b.
		var key string
		p := f.picker()
		for i := range 1000 {
			kk := fmt.Sprint("key", i)
			if p.ring.Lookup(kk) == 1 {
				key = kk
				break
			}
		}
		require.NotEmpty(t, key)
		_, o := p.Pick(PickInfo{Key: key, HasKey: true})
		require.Equal(t, Wait, o, "the owner is starting: wait for it")
		f.do(func(k *Core, now time.Time) { k.ConnState(now, b.conns[0], 2, nil) })
		r, o := f.picker().Pick(PickInfo{Key: key, HasKey: true})
		require.Equal(t, Picked, o)
		require.Equal(t, "b", r.Conn.Backend.Key)
	})
}

// A breaker change the core hears of late never undoes a later one: the
// pickers act on the state stored when the breaker changed.
func TestLateBreakerReportDoesNotUndoALaterChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, NewBreaker: func(b *Backend) *breaker.Breaker {
			brk, err := breaker.New(b.Key, breaker.Settings{}, nil)
			require.NoError(t, err)
			return brk
		}})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		f.readyAll()
		a := f.backend("a")
		a.StoreBreakerState(breaker.StateOpen)
		a.StoreBreakerState(breaker.StateClosed) // it closed again before the core heard it opened
		f.do(func(k *Core, now time.Time) { k.BreakerChanged(now, a) })
		r, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Picked, o)
		require.Equal(t, "a", r.Conn.Backend.Key)
	})
}
