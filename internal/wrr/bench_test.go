package wrr

import (
	"sync/atomic"
	"testing"
)

// go test ./internal/wrr/ -run '^$' -bench . -benchtime=200ms
//
// BenchmarkPick/counter-only is the baseline: the atomic increment every
// pick pays, with or without weights.

func BenchmarkPick(b *testing.B) {
	var ctr atomic.Uint64
	b.Run("counter-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctr.Add(1)
		}
	})
	for _, tc := range []struct {
		name    string
		weights []uint32
	}{
		{"equal-3", []uint32{1, 1, 1}},
		{"1:2:3", []uint32{1, 2, 3}},
		{"capped-4096", []uint32{1_000_003, 2_000_003, 3_000_017}},
	} {
		s := New(tc.weights)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Pick(ctr.Add(1))
			}
		})
	}
	s := New([]uint32{1, 2, 3})
	b.Run("1:2:3-no-atomic", func(b *testing.B) {
		b.ReportAllocs()
		var n uint64
		for b.Loop() {
			n++
			s.Pick(n)
		}
	})
	b.Run("1:2:3-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.Pick(ctr.Add(1))
			}
		})
	})
}

func BenchmarkNew(b *testing.B) {
	for _, tc := range []struct {
		name    string
		weights []uint32
	}{
		{"1:2:3", []uint32{1, 2, 3}},
		{"100-backends-capped", func() []uint32 {
			w := make([]uint32, 100)
			for i := range w {
				w[i] = uint32(1000 + i*37)
			}
			return w
		}()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				New(tc.weights)
			}
		})
	}
}
