package pool

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestJitterStaysWithinTenPercent(t *testing.T) {
	const d = 10 * time.Second
	lo, hi := d, time.Duration(0)
	for range 100000 {
		j := jitter(d)
		lo, hi = min(lo, j), max(hi, j)
	}
	require.Falsef(t, lo < 9*time.Second || hi > 11*time.Second, "jitter(%v) ranged %v..%v, want within ±10%%", d, lo, hi)
	// Spread over the whole range, not a constant.
	require.Falsef(t, lo > 9100*time.Millisecond || hi < 10900*time.Millisecond, "jitter(%v) ranged only %v..%v", d, lo, hi)
	require.Zero(t, jitter(0), "jitter(0) != 0")
}
