package balancer

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
	next, end atomic.Uint64 // round-robin tickets this P holds: [next, end)
	local     atomic.Uint64 // this P's own counter: connection rotation
	cursor    atomic.Uint64 // LeastActive's scan position (large fleets)
	_         [32]byte
}

// counters is the pickers' shared pick state, carried from picker to
// picker: a ticket dispenser for round-robin and one shard per P. A pick
// writes only its own P's shard, so picks on different cores share no
// written cache line; the global counter is written once per block of
// tickets.
//
// Round-robin tickets are handed out in blocks of one whole cycle (the
// number of backends, or the weighted schedule's length): a P walks its
// block before it takes the next one, so every block gives every backend
// its share exactly. At any moment at most one block per P is partly
// used, so over any number of picks a backend's count is within one per P
// of its exact share, and within one for callers on one P.
type counters struct {
	global atomic.Uint64
	shards []shard
}

func newCounters(seed uint64) *counters {
	c := &counters{shards: make([]shard, max(runtime.GOMAXPROCS(0), 1))}
	c.global.Store(seed)
	for i := range c.shards {
		c.shards[i].local.Store(seed + uint64(i)*0x9E3779B97F4A7C15)
		c.shards[i].cursor.Store(seed >> 1)
	}
	return c
}

// pin returns the calling P's shard, pinned: call unpin when done.
func (c *counters) pin() *shard {
	return &c.shards[uint(procPin())%uint(len(c.shards))]
}

func unpin() { procUnpin() }

// ticket returns the next round-robin ticket of s, taking a new block of
// size tickets when s's is used up.
func (c *counters) ticket(s *shard, size uint64) uint64 {
	v, end := s.next.Load(), s.end.Load()
	if v >= end || end-v > size {
		v = c.global.Add(size) - size
		end = v + size
		s.end.Store(end)
	}
	s.next.Store(v + 1)
	return v
}

// tick advances s's own counter.
func tick(s *shard) uint64 {
	v := s.local.Load() + 1
	s.local.Store(v)
	return v
}
