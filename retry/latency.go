package retry

import (
	"math"
	"sync/atomic"
	"time"
)

const (
	// latencySamples is how many recent latencies a method keeps.
	latencySamples = 256
	// latencyEvery is how often (in latencies recorded) the percentile is
	// computed again; it is also how many latencies are needed before the
	// first one.
	latencyEvery = 32
)

// latencyRing holds a method's recent attempt latencies and the
// percentile last computed from them. Safe for concurrent use; observe
// and delay take no lock and do not allocate.
type latencyRing struct {
	n       atomic.Uint64 // latencies recorded so far
	samples [latencySamples]atomic.Int64
	// pct is the last percentile computed, in nanoseconds, plus one; 0
	// until latencyEvery latencies are known.
	pct atomic.Int64
}

// observe records one latency; every latencyEvery latencies it computes
// the q-quantile (0.5 ≤ q < 1) of the ring again. Concurrent recorders
// may compute it at the same time from slightly different rings; the
// last store wins, and every value stored is a quantile of a recent ring.
func (r *latencyRing) observe(d time.Duration, q float64) {
	d = max(d, 0)
	n := r.n.Add(1)
	r.samples[(n-1)%latencySamples].Store(int64(d))
	if n%latencyEvery == 0 {
		r.pct.Store(int64(r.quantile(n, q)) + 1)
	}
}

// current returns the last percentile computed, and false while too few
// latencies are known.
func (r *latencyRing) current() (time.Duration, bool) {
	v := r.pct.Load()
	return time.Duration(v - 1), v > 0
}

// quantile returns the nearest-rank q-quantile of the ring, which has had
// n latencies recorded.
func (r *latencyRing) quantile(n uint64, q float64) time.Duration {
	var buf [latencySamples]int64 // on the stack
	count := int(min(n, latencySamples))
	for i := range count {
		buf[i] = r.samples[i].Load()
	}
	k := int(math.Ceil(q*float64(count))) - 1
	k = min(max(k, 0), count-1)
	return time.Duration(selectNth(buf[:count], k))
}

// selectNth reorders s so that s[k] is the value it would have if s were
// sorted, and returns it (Hoare's quickselect, middle pivot: fine for
// latencies, which are not adversarial).
func selectNth(s []int64, k int) int64 {
	lo, hi := 0, len(s)-1
	for lo < hi {
		pivot := s[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for s[i] < pivot {
				i++
			}
			for s[j] > pivot {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return s[k]
		}
	}
	return s[k]
}
