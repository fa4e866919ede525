package breaker_test

import (
	"testing"

	"github.com/sony/gobreaker/v2"

	"github.com/grpcpool/grpcpool/breaker"
)

// BenchmarkAllowDone measures one admitted call (Allow, then done(nil)) on
// a closed breaker. Compare with BenchmarkAllowDoneGobreaker, the bare
// gobreaker TwoStepCircuitBreaker in the same run: gobreaker allocates its
// done closure (1 alloc); Breaker adds the once-only call record and the
// func value returned for it (2 allocs).
func BenchmarkAllowDone(b *testing.B) {
	br, err := breaker.New("bench", breaker.Settings{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		done, err := br.Allow()
		if err != nil {
			b.Fatal(err)
		}
		done(nil)
	}
}

// BenchmarkAllowDoneGobreaker is the baseline for BenchmarkAllowDone.
func BenchmarkAllowDoneGobreaker(b *testing.B) {
	cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{Name: "bench"})
	b.ReportAllocs()
	for b.Loop() {
		done, err := cb.Allow()
		if err != nil {
			b.Fatal(err)
		}
		done(nil)
	}
}

// BenchmarkAllowDoneParallel is BenchmarkAllowDone from GOMAXPROCS
// goroutines sharing one breaker (gobreaker serializes on its mutex).
func BenchmarkAllowDoneParallel(b *testing.B) {
	br, err := breaker.New("bench", breaker.Settings{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := br.Allow()
			if err != nil {
				b.Error(err)
				return
			}
			done(nil)
		}
	})
}

// BenchmarkAllowOpen measures a rejected call.
func BenchmarkAllowOpen(b *testing.B) {
	br, err := breaker.New("bench", breaker.Settings{ConsecutiveFailures: 1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	done, _ := br.Allow()
	done(breaker.ErrOpen) // any non-status error is a failure
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Allow(); err != breaker.ErrOpen {
			b.Fatal(err)
		}
	}
}
