// Package subset chooses which backends one client of a fleet connects to,
// so that every client keeps a few connections and every backend carries
// about the same number of them, without the clients talking to each other.
//
// A client knows its index among the fleet's clients (from a StatefulSet
// ordinal, a job index or a coordination service) and the backends'
// keys. Select maps the two to the client's subset deterministically: every
// client computes its own share and the shares fit together.
//
// # The scheme
//
// Clients are grouped into rounds of RoundSize consecutive indexes, as in
// the deterministic subsetting of the SRE book. Each round has its own
// consistent ordering of the backends: every backend gets a score, a hash
// of its key and the round, which places it on the round's ring. A round
// has 16 anchors spread evenly around its ring (at an offset drawn from
// the round, in bit-reversed order so that a partial round is spread
// too), and each anchor is shared by four clients: two take the size
// backends after it and the size after those, clockwise; two do the same
// counter-clockwise.
//
// Rounds make the load even: a round's clients cover its whole ring, each
// backend about 64×size/len(keys) times, and the unevenness of one ring
// (backends are not evenly spaced on it) averages out over the rounds.
// Scores make changes local: a backend's place on a ring depends on its
// own key only, so adding or removing one changes only the windows it
// falls in, and the outer window of the same anchor and direction, shifted
// by one. Four windows per anchor, rather than one, make each anchor's
// span four times wider and so its unevenness half as large; growing them
// in opposite directions keeps the shift to one window in two.
// docs/fleets.md has the measured spread and churn.
//
// The choice does not depend on the number of clients: a client's subset is
// a function of its index alone, so clients joining at the end, or a
// membership that gives a leaver's index to the last client, move no one
// else.
package subset

import (
	"cmp"
	"math/bits"
	"slices"
)

// RoundSize is the number of consecutive client indexes that share one
// ordering of the backends. It is fixed (not derived from the number of
// backends) so that no change of the backend list moves a client to
// another round. Balance is best while len(keys)/size is at most about
// RoundSize; for fleets with many more backends per subset the spread
// widens towards (and stays inside) that of random subsetting.
const RoundSize = perAnchor << anchorBits

// anchorBits: a round has 1<<anchorBits anchors.
const anchorBits = 4

// perAnchor is the number of clients of a round that share one anchor:
// half go clockwise from it, half counter-clockwise, each direction's
// windows one after the other.
const perAnchor = 4

// Select returns the keys of the backends that the client with the given
// index connects to: size of them, in the order the scheme ranks them, or
// all keys when size ≥ len(keys). keys must not hold duplicates; their
// order does not matter. index is the client's place in the fleet,
// 0 ≤ index; size ≥ 1. Select returns nil for an empty keys, a negative
// index or a size below 1. It does not modify keys and is safe for
// concurrent use.
func Select(keys []string, index, size int) []string {
	if len(keys) == 0 || index < 0 || size < 1 {
		return nil
	}
	if size >= len(keys) {
		return slices.Clone(keys)
	}
	round := uint64(index / RoundSize)
	pos := index % RoundSize
	seed := mix(round*golden + 1)
	// Anchor g of the round sits at bitrev(g)/anchors of the ring, plus the
	// round's offset: any prefix of a round (a fleet smaller than a round,
	// or its last, partial round) is spread around the whole ring, and a
	// full round is evenly spaced.
	step := uint64(1) << (64 - anchorBits)
	g := uint64(pos / perAnchor)
	anchor := bits.Reverse64(g) + seed%step

	// The first client of a pair takes the size backends that follow the
	// anchor clockwise, the second the size that precede it: windows that
	// grow away from a shared anchor, so that a backend added or removed
	// inside one changes that window only, by that backend.
	clockwise := pos%2 == 0
	type scored struct {
		dist uint64 // distance from the anchor, mod 2^64, in the window's direction
		key  string
	}
	ring := make([]scored, len(keys))
	for i, k := range keys {
		d := score(k, seed) - anchor
		if !clockwise {
			d = anchor - score(k, seed)
		}
		ring[i] = scored{dist: d, key: k}
	}
	slices.SortFunc(ring, func(a, b scored) int {
		if c := cmp.Compare(a.dist, b.dist); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	layer := (pos % perAnchor) / 2
	out := make([]string, size)
	for i := range out {
		out[i] = ring[(layer*size+i)%len(ring)].key
	}
	return out
}

// score is a backend's place on the ring of the round with the given seed:
// a 64-bit hash of the key mixed with the seed. It is stable across
// processes, platforms and releases, since clients of different builds
// must agree on it.
func score(key string, seed uint64) uint64 {
	return mix(fnv64a(key) ^ seed)
}

const golden = 0x9e3779b97f4a7c15

// fnv64a is the 64-bit FNV-1a hash.
func fnv64a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is the splitmix64 finaliser: it spreads every input bit over the
// output, which FNV alone does poorly for keys that differ in one byte.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
