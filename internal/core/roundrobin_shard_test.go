package core

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
					assert.Fail(t, "not picked")
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
