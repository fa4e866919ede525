package core

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pickN makes n picks through the current picker and releases each at
// once, counting them per backend key and per connection.
func pickN(t *testing.T, f *fakeSeam, n int, info PickInfo) (map[string]int, map[*Conn]int) {
	t.Helper()
	byB, byC := map[string]int{}, map[*Conn]int{}
	p := f.picker()
	for range n {
		r, o := p.Pick(info)
		require.Equal(t, Picked, o)
		byB[r.Conn.Backend.Key]++
		byC[r.Conn]++
		r.Conn.Release()
	}
	return byB, byC
}

// Round-robin stays exact with per-P counters: one caller, on whichever P
// it runs, gives every backend its share within one, and every connection
// of a backend its share within one, over any number of picks.
func TestRoundRobinExactForOneCaller(t *testing.T) {
	f := newFake(t, Config{Size: 2})
	keys := []string{"a", "b", "c", "d", "e", "f"}
	f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf(keys...)) })
	f.readyAll()
	for _, calls := range []int{6 * 100, 6*100 + 5, 7} {
		byB, byC := pickN(t, f, calls, PickInfo{})
		for _, key := range keys {
			require.InDelta(t, float64(calls)/6, byB[key], 1, "backend %s of %v", key, byB)
		}
		for c, n := range byC {
			require.InDelta(t, float64(byB[c.Backend.Key])/2, n, 1, "connection %d", c.ID)
		}
	}
}

// From many goroutines on every P, a backend's count is within one per P
// of its exact share: each P holds at most one partly used block of
// consecutive tickets.
func TestRoundRobinSpreadFromEveryP(t *testing.T) {
	f := newFake(t, Config{Size: 1})
	keys := []string{"a", "b", "c", "d", "e", "f"}
	f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf(keys...)) })
	f.readyAll()
	p := f.picker()
	const goroutines, each = 8, 3000
	var mu sync.Mutex
	byB := map[string]int{}
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			local := map[string]int{}
			for range each {
				r, o := p.Pick(PickInfo{})
				if o != Picked {
					t.Error("not picked")
					return
				}
				local[r.Conn.Backend.Key]++
				r.Conn.Release()
			}
			mu.Lock()
			defer mu.Unlock()
			for k, v := range local {
				byB[k] += v
			}
		})
	}
	wg.Wait()
	shards := len(p.ctr.shards)
	for _, key := range keys {
		require.InDelta(t, float64(goroutines*each)/6, byB[key], float64(shards), "backend %s of %v (%d shards)", key, byB, shards)
	}
}
