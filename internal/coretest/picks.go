package coretest

import (
	"testing"
	"time"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/core"
)

// PickN makes n picks with info through the current picker, each released
// at once, and counts them per backend key and per connection. It fails
// the test at the first pick not placed.
func (f *Fake) PickN(tb testing.TB, n int, info core.PickInfo) (byKey map[string]int, byConn map[*core.Conn]int) {
	tb.Helper()
	byKey, byConn = map[string]int{}, map[*core.Conn]int{}
	p := f.Picker()
	for i := range n {
		r, o := p.Pick(info)
		if o != core.Picked {
			tb.Fatalf("pick %d: got %v, want Picked (%v)", i, o, p.FailErr())
		}
		byKey[r.Conn.Backend.Key]++
		byConn[r.Conn]++
		r.Conn.Release()
	}
	return byKey, byConn
}

// OpenStreams places n streams that never end through the current picker,
// counted on their backends as the pool counts an open stream (what
// LeastActive reads). It fails the test at the first pick not placed.
func (f *Fake) OpenStreams(tb testing.TB, n int) {
	tb.Helper()
	p := f.Picker()
	for i := range n {
		r, o := p.Pick(core.PickInfo{})
		if o != core.Picked {
			tb.Fatalf("stream %d: got %v, want Picked (%v)", i, o, p.FailErr())
		}
		r.Conn.Backend.Streams.Add(1)
	}
}

// Loads returns the open streams of the backends of keys, in order.
func (f *Fake) Loads(keys ...string) []int64 {
	out := make([]int64, len(keys))
	for i, k := range keys {
		out[i] = f.Backend(k).Streams.Load()
	}
	return out
}

// NewWithBreakers is New with a breaker of settings on every backend whose
// state changes reach the Core as the pool's do: stored on the backend at
// once, then applied as an event under the lock.
func NewWithBreakers(tb testing.TB, cfg core.Config, settings breaker.Settings) *Fake {
	tb.Helper()
	var f *Fake
	cfg.NewBreaker = func(b *core.Backend) *breaker.Breaker {
		brk, err := breaker.New(b.Key, settings, func(_ string, _, to breaker.State) {
			b.StoreBreakerState(to)
			go f.Do(func(k *core.Core, now time.Time) { k.BreakerChanged(now, b) })
		})
		if err != nil {
			tb.Fatalf("breaker.New(%q): %v", b.Key, err)
		}
		return brk
	}
	f = New(tb, cfg)
	return f
}
