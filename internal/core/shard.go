package core

import (
	"runtime"
	"sync/atomic"
	_ "unsafe" // for go:linkname
)

// procPin pins the calling goroutine to its P and returns the P's id;
// procUnpin releases it. Between them the goroutine is not preempted, so
// nothing else runs on that P. (runtime.procPin is kept linkable for
// packages outside the standard library: go.dev/issue/67401.)
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// shard is one P's pick state, on a cache line of its own. Only the
// goroutine pinned to that P touches it, so its atomics are never
// contended: they are loads and stores, there only so the race detector
// sees the hand-over from one goroutine to the next on the same P.
type shard struct {
	next, end atomic.Uint64           // round-robin tickets this P holds: [next, end)
	hot       atomic.Uint32           // blocks to take before trying single tickets again
	idx       uint32                  // its index in counters.shards
	local     atomic.Uint64           // this P's own counter: connection rotation
	cursor    atomic.Uint64           // LeastActive's scan position (large fleets)
	hint      atomic.Pointer[Backend] // LeastActive: a backend this P's last release left at the floor
	_         [80]byte                // 128 bytes: no two Ps' shards share a cache line, or a prefetched pair
}

// counters is the pickers' shared pick state, carried from picker to
// picker: a ticket dispenser for round-robin and one shard per P.
//
// Round-robin takes ticket t to backend t mod cycle. Uncontended, a pick
// takes the next ticket from the global counter by compare-and-swap, so
// one caller, on whichever P it runs, walks the cycle exactly. When the
// swap fails (another core picked at the same instant), the P takes a
// block of tickets (whole cycles, at least blockMin) and picks from it
// without writing shared memory, for hotBlocks blocks, before it tries
// single tickets again. Tickets in a block are consecutive, so a partly
// used block gives every backend its share within one: over any number of
// picks a backend's count is within one per partly used block — at most
// one per P — of its exact share, and exact while picks do not collide.
type counters struct {
	global atomic.Uint64
	shards []shard
}

const (
	blockMin  = 64
	hotBlocks = 16
)

func newCounters(seed uint64) *counters {
	c := &counters{shards: make([]shard, max(runtime.GOMAXPROCS(0), 1))}
	c.global.Store(seed >> 1)
	for i := range c.shards {
		c.shards[i].idx = uint32(i)
		c.shards[i].local.Store(seed >> 3)
		c.shards[i].cursor.Store(seed >> 1)
	}
	return c
}

// pin returns the calling P's shard, pinned: call unpin when done. There
// is a shard per P of GOMAXPROCS when the Core was made; if GOMAXPROCS
// grows later, Ps share shards, and two of them may then take the same
// ticket or turn at once — a pick off by one, never a fault.
func (c *counters) pin() *shard {
	return &c.shards[uint(procPin())%uint(len(c.shards))]
}

func unpin() { procUnpin() }

// ticket returns the next round-robin ticket for s's P, for a cycle of
// the given length.
func (c *counters) ticket(s *shard, cycle uint64) uint64 {
	if v, end := s.next.Load(), s.end.Load(); v < end {
		s.next.Store(v + 1)
		return v
	}
	if h := s.hot.Load(); h == 0 {
		v := c.global.Load()
		if c.global.CompareAndSwap(v, v+1) {
			return v
		}
		s.hot.Store(hotBlocks)
	} else {
		s.hot.Store(h - 1)
	}
	size := cycle * ((blockMin + cycle - 1) / cycle)
	v := c.global.Add(size) - size
	s.next.Store(v + 1)
	s.end.Store(v + size)
	return v
}

// turn advances s's own counter and returns the connection turn of its
// P: P i of n takes turns i, i+n, i+2n, …, so with at least as many
// connections as Ps no two Ps take the same connection at the same turn
// (and with fewer, they share them evenly), and calls from different
// cores rarely write the same connection's counters.
func (c *counters) turn(s *shard) uint64 {
	v := s.local.Load() + 1
	s.local.Store(v)
	return v*uint64(len(c.shards)) + uint64(s.idx)
}
