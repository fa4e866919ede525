package chash

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// backendIDs returns n distinct addresses, starting from the from-th.
func backendIDs(n, from int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("10.0.%d.%d:50051", (from+i)/250, (from+i)%250+1)
	}
	return ids
}

func randomKeys(n int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%016x", rng.Uint64())
	}
	return keys
}

// assign returns the backend id each key maps to.
func assign(l lookuper, ids, keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = ids[l.lookup(k)]
	}
	return out
}

// maxOverMean returns max/mean of the number of keys per backend.
func maxOverMean(owners []string, n int) float64 {
	counts := map[string]int{}
	for _, o := range owners {
		counts[o]++
	}
	m := 0
	for _, c := range counts {
		m = max(m, c)
	}
	return float64(m) / (float64(len(owners)) / float64(n))
}

func movedFraction(a, b []string) float64 {
	moved := 0
	for i := range a {
		if a[i] != b[i] {
			moved++
		}
	}
	return float64(moved) / float64(len(a))
}

// shares returns the exact fraction of the hash space each backend owns.
func shares(t *Table) []float64 {
	s := make([]float64, t.n)
	prev := t.ring[len(t.ring)-1] &^ t.mask
	for _, e := range t.ring {
		p := e &^ t.mask
		s[e&t.mask] += float64(p-prev) / math.Exp2(64) // wraps correctly
		prev = p
	}
	if len(t.ring) == 1 {
		s[0] = 1
	}
	return s
}

// maxShare returns max/mean of the exact shares of equally weighted backends.
func maxShare(t *Table) float64 {
	return slices.Max(shares(t)) * float64(t.n)
}
