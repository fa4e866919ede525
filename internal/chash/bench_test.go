package chash

import (
	"fmt"
	"testing"
)

// go test ./internal/chash/ -run '^$' -bench . -benchtime=200ms
//
// BenchmarkLookup/hash-only is the baseline: hashing the key, which any
// scheme pays; the rest is the cost of the ring.

func BenchmarkLookup(b *testing.B) {
	keys := randomKeys(4096, 2)
	b.Run("hash-only", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			Hash(keys[i&4095])
		}
	})
	for _, n := range []int{5, 100} {
		tb := New(backendIDs(n, 0), nil)
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				tb.Lookup(keys[i&4095])
			}
		})
	}
}

func BenchmarkLookupFunc(b *testing.B) {
	keys := randomKeys(4096, 2)
	for _, n := range []int{5, 100} {
		tb := New(backendIDs(n, 0), nil)
		healthy := make([]bool, n)
		for i := range healthy {
			healthy[i] = true
		}
		ok := func(i int) bool { return healthy[i] }
		b.Run(fmt.Sprintf("backends=%d/all-up", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				tb.LookupFunc(keys[i&4095], ok)
			}
		})
		// Half the backends down: half the keys take the fallback walk.
		for i := range healthy {
			healthy[i] = i%2 == 0
		}
		b.Run(fmt.Sprintf("backends=%d/half-down", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				tb.LookupFunc(keys[i&4095], ok)
			}
		})
	}
}

func BenchmarkNew(b *testing.B) {
	for _, n := range []int{5, 100} {
		ids := backendIDs(n, 0)
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				New(ids, nil)
			}
		})
	}
}
