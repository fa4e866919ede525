package retry

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSelectNth(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= 300; n += 7 {
		s := make([]int64, n)
		for i := range s {
			s[i] = r.Int64N(50) // many duplicates
		}
		sorted := slices.Sorted(slices.Values(s))
		for _, k := range []int{0, n / 2, n - 1, r.IntN(n)} {
			c := slices.Clone(s)
			assert.Equal(t, sorted[k], selectNth(c, k), "n=%d k=%d", n, k)
		}
	}
}

func TestLatencyRing(t *testing.T) {
	var r latencyRing
	for i := range latencyEvery - 1 {
		r.observe(time.Duration(i)*time.Millisecond, 0.95)
	}
	_, ok := r.current()
	assert.False(t, ok, "no percentile before latencyEvery latencies")

	// 95 fast and 5 slow latencies, again and again: the ring's p95 is
	// the largest fast one.
	var r2 latencyRing
	for i := range 10 * latencySamples {
		d := time.Duration(i%95+1) * time.Millisecond
		if i%100 >= 95 {
			d = time.Second
		}
		r2.observe(d, 0.95)
	}
	got, ok := r2.current()
	assert.True(t, ok)
	assert.InDelta(t, float64(95*time.Millisecond), float64(got), float64(15*time.Millisecond))
	assert.Less(t, got, time.Second)

	// Only the last latencySamples count: after a slowdown everywhere,
	// the percentile follows.
	for range latencySamples {
		r2.observe(time.Second, 0.95)
	}
	got, _ = r2.current()
	assert.Equal(t, time.Second, got)

	assert.Zero(t, testing.AllocsPerRun(100, func() { r2.observe(time.Millisecond, 0.95) }))
}
