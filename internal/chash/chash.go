// Package chash maps request keys to backends with consistent hashing, for
// session affinity.
//
// A [Table] is a Ketama-style hash ring: every backend owns virtual nodes,
// points on a 64-bit ring derived from its identity (its address), and a key
// belongs to the first point at or after [Hash](key), wrapping round. On top of
// the sorted ring sits a bucket index on the top bits of the hash, so a lookup
// is one hash and two or three memory reads instead of a binary search
// (about 10 ns plus the hash; docs/hashing.md compares it with Maglev and
// rendezvous hashing and explains the choice).
//
// Properties, asserted by the tests:
//
//   - Balance: a backend of the smallest weight gets 2048 virtual nodes, so
//     its share of the hash space is within about 2 % (one standard
//     deviation) of fair; 10,000 keys over 5 backends give max/mean < 1.10.
//   - Stability: a backend's points depend only on its identity and its
//     virtual node count, which depends only on its weight relative to the
//     smallest weight. So, while the smallest weight stays the same and the
//     ring is under its cap (512 backends of equal weight), adding a backend
//     moves only the keys it takes over, removing one moves only its own keys,
//     and the order of ids does not matter.
//   - Fallback: a key's preference order is the sequence of distinct backends
//     met walking the ring clockwise from the key. [Table.LookupFunc] returns
//     the first one that can take the call, which is the backend the key would
//     move to if its own backend were removed. When the own backend heals the
//     key returns to it, since nothing is remembered between lookups.
//
// The package is pure computation: it holds no goroutines, locks or timers.
package chash

import (
	"math"
	"math/bits"
)

const (
	// vnodesPerMinWeight is the number of virtual nodes of a backend with the
	// smallest weight in the table; a backend of weight w gets about
	// vnodesPerMinWeight*w/minWeight. Chosen by measurement (docs/hashing.md):
	// the relative spread of a backend's share is about 1/sqrt(vnodes), 2.2 %.
	vnodesPerMinWeight = 2048

	// maxRingSize caps the number of virtual nodes in a table (8 bytes each,
	// plus at most 2 bytes each of index: at most 10 MiB). When the weights
	// ask for more, every backend's count is scaled down proportionally,
	// keeping at least one.
	maxRingSize = 1 << 20

	// bucketLog2 sizes the index: it has one bucket per 2..4 ring entries
	// (1<<bucketBits >= len(ring)>>bucketLog2), so it costs at most 2 bytes
	// per virtual node and a lookup scans a few adjacent entries.
	bucketLog2 = 2
)

// Table is a consistent-hash ring over a fixed set of weighted backends.
//
// A Table is immutable after [New] and safe for concurrent use by multiple
// goroutines; lookups do not allocate. The zero value and a nil *Table are
// empty tables: every lookup returns -1.
type Table struct {
	// ring holds one entry per virtual node, sorted ascending. An entry is the
	// node's 64-bit point with its low bits.Len(n-1) bits replaced by the
	// index of the backend that owns it, keeping an entry in 8 bytes. The
	// truncated points still have 40 or more significant bits; equal ones (as
	// for equal ids) are ordered by index.
	ring []uint64
	// start[b] is the index of the first entry of ring whose bucket, the top
	// bits of the point (entry >> shift), is at least b; the last element is
	// len(ring). A bucket holds 2..4 entries on average, so the lookup scan is
	// short and stays within one or two cache lines.
	start []uint32
	shift uint   // 64 - bucket bits
	mask  uint64 // 1<<ownerBits - 1: the owner index bits of an entry
	n     int    // number of backends
}

// New builds the table for backends ids with the given weights.
//
// ids are stable backend identities (addresses). Placement is a function of
// the id and its weight relative to the smallest weight only, so the same id
// keeps its keys across rebuilds, whatever its index. Two equal ids get the
// same points; the lower index wins every tie and owns the keys, the other
// one is the first fallback of each.
//
// weights may be nil (all weights 1); otherwise len(weights) must equal
// len(ids) — New panics if not, as that is a bug in the caller. A weight of 0
// is treated as 1. A backend of weight w gets round(2048*w/minWeight) virtual
// nodes, scaled down proportionally (at least 1 each) if the total would
// exceed 1<<20, so with weights of very different magnitude the smallest ones
// are only honoured roughly: a backend's share of keys has a relative error of
// about 1/sqrt(its virtual nodes) (docs/hashing.md has measurements).
//
// New costs some 20 ns and 10 bytes per virtual node (a few milliseconds and
// 1.8 MiB for 100 backends): build a table when the set of backends or their
// weights change, not per call. New with no ids returns an empty table.
func New(ids []string, weights []uint32) *Table {
	return build(ids, weights, vnodesPerMinWeight, maxRingSize)
}

func build(ids []string, weights []uint32, perMin, maxRing int) *Table {
	if weights != nil && len(weights) != len(ids) {
		panic("chash: New called with len(weights) != len(ids)")
	}
	n := len(ids)
	t := &Table{n: n}
	if n == 0 {
		return t
	}
	counts, total := vnodeCounts(n, weights, perMin, maxRing)

	ownerBits := uint(bits.Len(uint(n - 1)))
	t.mask = 1<<ownerBits - 1
	bucketBits := uint(max(0, bits.Len(uint(total-1))-bucketLog2))
	t.shift = 64 - bucketBits

	// Counting-sort the points by bucket, which yields the index and leaves
	// only buckets of a few entries to sort: O(total) expected. The points
	// are generated twice (they are cheap) rather than stored twice.
	seeds := make([]uint64, n)
	for i, id := range ids {
		seeds[i] = Hash(id)
	}
	t.start = make([]uint32, 1<<bucketBits+1)
	for i, seed := range seeds {
		for j := range counts[i] {
			t.start[vnodePoint(seed, j)>>t.shift+1]++
		}
	}
	for b := 1; b < len(t.start); b++ {
		t.start[b] += t.start[b-1]
	}
	// Scatter, using start[b] as bucket b's write cursor: afterwards start[b]
	// holds the end of bucket b, so shift it back by one.
	t.ring = make([]uint64, total)
	for i, seed := range seeds {
		for j := range counts[i] {
			p := vnodePoint(seed, j)&^t.mask | uint64(i)
			b := p >> t.shift
			t.ring[t.start[b]] = p
			t.start[b]++
		}
	}
	copy(t.start[1:], t.start[:len(t.start)-1])
	t.start[0] = 0
	for b := 0; b+1 < len(t.start); b++ {
		insertionSort(t.ring[t.start[b]:t.start[b+1]])
	}
	return t
}

// vnodeCounts returns the number of virtual nodes of each backend and their
// sum: round(perMin*w/minWeight), all scaled down by the same factor to fit
// maxRing, at least 1 each.
func vnodeCounts(n int, weights []uint32, perMin, maxRing int) ([]int, int) {
	w := func(i int) float64 {
		if weights == nil || weights[i] == 0 {
			return 1
		}
		return float64(weights[i])
	}
	minW := math.Inf(1)
	for i := range n {
		minW = min(minW, w(i))
	}
	// perMin*w < 2^53 is exact in float64; only the division rounds.
	sum := 0.0
	for i := range n {
		sum += float64(perMin) * w(i) / minW
	}
	scale := 1.0
	if sum > float64(maxRing) {
		scale = float64(maxRing) / sum
	}
	counts := make([]int, n)
	total := 0
	for i := range n {
		c := max(1, int(math.Round(float64(perMin)*w(i)/minW*scale)))
		counts[i] = c
		total += c
	}
	return counts, total
}

func insertionSort(s []uint64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Len returns the number of backends in the table.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return t.n
}

// Lookup returns the index into ids of the backend that owns key, or -1 if
// the table is empty. It does not allocate.
func (t *Table) Lookup(key string) int {
	if t == nil || t.n == 0 {
		return -1
	}
	return int(t.ring[t.find(Hash(key))] & t.mask)
}

// LookupFunc returns the first backend in key's preference order for which
// ok returns true, or -1 if there is none (or the table is empty).
//
// The preference order starts with [Table.Lookup](key) and continues with
// the distinct backends met walking the ring clockwise from the key's point:
// the backend the key would move to if its own backend were removed, then the
// one after that, and so on. It is deterministic per key and the same in
// every process. ok is called synchronously, in preference order, at most
// once per backend in tables of up to 512 backends; in larger tables it may
// be called again for a backend already rejected, so it should be a cheap,
// side-effect-free check (for example, "is its breaker closed"); it must not
// be nil. LookupFunc does not allocate.
func (t *Table) LookupFunc(key string, ok func(i int) bool) int {
	return t.LookupHashFunc(Hash(key), ok)
}

// LookupHashFunc is [Table.LookupFunc] for the key whose [Hash] is h: a
// caller that has hashed the key already (or that passes it where a
// string would cost an allocation) looks it up without hashing it again.
func (t *Table) LookupHashFunc(h uint64, ok func(i int) bool) int {
	if t == nil || t.n == 0 {
		return -1
	}
	i := t.find(h)
	first := int(t.ring[i] & t.mask)
	if ok(first) {
		return first
	}
	return t.fallback(i, first, ok)
}

// dedupLimit is the largest table for which fallback remembers which
// backends it has already offered to ok (in a bitset on the stack).
const dedupLimit = 512

// fallback walks the ring clockwise from entry i, whose owner first has been
// rejected, and returns the first owner accepted by ok.
func (t *Table) fallback(i int, first int, ok func(int) bool) int {
	var seen [dedupLimit / 64]uint64
	dedup := t.n <= dedupLimit
	left := t.n - 1 // backends not yet offered to ok
	if dedup {
		seen[first>>6] |= 1 << (first & 63)
	}
	last := first
	for range len(t.ring) - 1 {
		if left == 0 {
			return -1
		}
		i++
		if i == len(t.ring) {
			i = 0
		}
		o := int(t.ring[i] & t.mask)
		if o == last {
			continue
		}
		last = o
		if dedup {
			w, bit := o>>6, uint64(1)<<(o&63)
			if seen[w]&bit != 0 {
				continue
			}
			seen[w] |= bit
			left--
		}
		if ok(o) {
			return o
		}
	}
	return -1
}

// find returns the index of the first ring entry at or after point h,
// wrapping to 0 past the end.
func (t *Table) find(h uint64) int {
	b := h >> t.shift
	i, end := t.start[b], t.start[b+1]
	h &^= t.mask
	for i < end && t.ring[i] < h {
		i++
	}
	if int(i) == len(t.ring) {
		return 0
	}
	return int(i)
}
