package pool

import (
	"testing"
	"time"
)

func TestJitterStaysWithinTenPercent(t *testing.T) {
	const d = 10 * time.Second
	lo, hi := d, time.Duration(0)
	for range 100000 {
		j := jitter(d)
		lo, hi = min(lo, j), max(hi, j)
	}
	if lo < 9*time.Second || hi > 11*time.Second {
		t.Fatalf("jitter(%v) ranged %v..%v, want within ±10%%", d, lo, hi)
	}
	// Spread over the whole range, not a constant.
	if lo > 9100*time.Millisecond || hi < 10900*time.Millisecond {
		t.Fatalf("jitter(%v) ranged only %v..%v", d, lo, hi)
	}
	if jitter(0) != 0 {
		t.Fatal("jitter(0) != 0")
	}
}
