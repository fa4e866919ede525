package retry_test

import (
	"testing"
	"time"

	"github.com/grpcpool/grpcpool/retry"
)

// TestBackoffDistribution checks bounds, growth, cap and full jitter with
// many samples. The statistical bounds are far outside what chance can
// produce (the mean is checked to 5% of the bound, about 25 standard
// errors), so the test does not flake.
func TestBackoffDistribution(t *testing.T) {
	const n = 20000
	p := retry.Policy{} // 25ms, x2, capped at 1s
	bounds := []time.Duration{
		25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond,
		400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second, time.Second,
	}
	for i, bound := range bounds {
		retryN := i + 1
		var lo, hi, sum time.Duration = bound, 0, 0
		for range n {
			d := p.Backoff(retryN)
			if d < 0 || d > bound {
				t.Fatalf("Backoff(%d) = %v, want in [0, %v]", retryN, d, bound)
			}
			lo, hi, sum = min(lo, d), max(hi, d), sum+d
		}
		mean := sum / n
		if lo > bound/20 || hi < bound-bound/20 {
			t.Errorf("Backoff(%d) over %d samples spans [%v, %v], want about [0, %v] (full jitter)", retryN, n, lo, hi, bound)
		}
		if diff := mean - bound/2; diff < -bound/20 || diff > bound/20 {
			t.Errorf("Backoff(%d) mean = %v, want %v ± 5%%", retryN, mean, bound/2)
		}
	}
}

func TestBackoffAllocs(t *testing.T) {
	p := retry.Policy{}.WithDefaults()
	if n := testing.AllocsPerRun(100, func() { p.Backoff(3) }); n != 0 {
		t.Errorf("Backoff allocs = %v, want 0", n)
	}
}

func BenchmarkBackoff(b *testing.B) {
	p := retry.Policy{}.WithDefaults()
	b.ReportAllocs()
	for b.Loop() {
		p.Backoff(3)
	}
}
