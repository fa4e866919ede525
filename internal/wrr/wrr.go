// Package wrr precomputes a smooth weighted round-robin schedule, so that
// picking a backend is one atomic increment (by the caller) and one slice
// read, with no lock.
//
// The schedule is the sequence produced by nginx's smooth weighted
// round-robin (ngx_http_upstream_round_robin.c): on each pick every backend's
// current weight grows by its weight, the backend with the largest current
// weight (the lowest index on a tie) is picked, and its current weight drops
// by the total. Over one cycle of len = sum of weights picks, backend i is
// picked exactly weights[i] times (weights reduced by their gcd, and scaled
// down if their sum exceeds [MaxLen]; see [New]). The picks are interleaved
// rather than bunched (1:2:3 is C B A C B C, not C C C B B A): a backend is
// never a whole pick ahead of its fair share at any point of the cycle, and
// in practice falls behind by less than two (docs/hashing.md has details).
//
// The package is pure computation: it holds no goroutines, locks or timers.
package wrr

import "math"

// MaxLen is the largest schedule New builds (except that every backend gets
// at least one slot, so a schedule over more than MaxLen backends has one
// slot per backend). Weights whose sum, after dividing by their greatest
// common divisor, exceeds MaxLen are scaled down to sum to about MaxLen.
const MaxLen = 4096

// Schedule is a precomputed cycle of backend indexes in smooth weighted
// round-robin order.
//
// A Schedule is immutable after [New] and safe for concurrent use by multiple
// goroutines; [Schedule.Pick] does not allocate. A nil *Schedule is empty.
type Schedule struct {
	// order is the cycle; nil when all weights are equal, in which case the
	// cycle is 0, 1, ..., n-1 and is computed rather than stored.
	order []uint32
	n     uint64 // length of the cycle
}

// New returns the schedule for backends with the given weights; backend i is
// picked weights[i] times per cycle of sum(weights) picks.
//
// A weight of 0 is treated as 1: a backend in the list is always picked now
// and then (leave a backend out to stop picking it). If all weights are equal
// the schedule is plain round-robin and stores nothing.
//
// Weights are divided by their greatest common divisor, so 100:200:300 is the
// 6-entry cycle of 1:2:3. If the sum still exceeds [MaxLen], every weight is
// scaled to round(weight*MaxLen/sum), at least 1, and reduced by the gcd
// again: a backend's share of picks is then off by at most half a slot,
// 0.5/MaxLen (about 0.012 %) of all picks, plus, for a backend whose fair
// share is below one slot, the difference up to one slot. New with no weights
// returns an empty schedule.
func New(weights []uint32) *Schedule {
	n := len(weights)
	if n == 0 {
		return &Schedule{}
	}
	w := make([]uint64, n)
	for i, x := range weights {
		w[i] = max(uint64(x), 1)
	}
	sum := reduce(w)
	if sum > MaxLen {
		scale := float64(MaxLen) / float64(sum)
		for i, x := range w {
			w[i] = max(1, uint64(math.Round(float64(x)*scale)))
		}
		sum = reduce(w)
	}
	if sum == uint64(n) { // all weights equal (1 after reduce)
		return &Schedule{n: sum}
	}
	return &Schedule{order: smooth(w, sum), n: sum}
}

// reduce divides w by the gcd of its elements and returns their sum.
func reduce(w []uint64) uint64 {
	g := w[0]
	for _, x := range w[1:] {
		g = gcd(g, x)
	}
	var sum uint64
	for i := range w {
		w[i] /= g
		sum += w[i]
	}
	return sum
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// smooth returns one cycle of nginx's smooth weighted round-robin over w,
// whose sum is total. O(total * len(w)); total is at most MaxLen, or about
// len(w) when there are more backends than that.
func smooth(w []uint64, total uint64) []uint32 {
	order := make([]uint32, total)
	cur := make([]int64, len(w))
	for k := range order {
		best := 0
		for i, x := range w {
			cur[i] += int64(x)
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= int64(total)
		order[k] = uint32(best)
	}
	return order
}

// Len returns the length of the cycle: the sum of the (reduced) weights, or
// the number of backends when all weights are equal. It is 0 for an empty
// schedule.
func (s *Schedule) Len() int {
	if s == nil {
		return 0
	}
	return int(s.n)
}

// Pick returns the backend for the n-th pick: the caller keeps one counter
// per schedule, increments it atomically on every pick, and passes the new
// value. Consecutive values of n walk the cycle in order; callers typically
// start the counter at a random value so that many clients do not all begin
// on backend 0. Pick returns -1 for an empty schedule.
func (s *Schedule) Pick(n uint64) int {
	if s == nil || s.n == 0 {
		return -1
	}
	if s.order == nil {
		return int(n % s.n)
	}
	return int(s.order[n%s.n])
}
