package retry

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff returns how long to wait before retry number retry (1 for the
// first retry, that is the second attempt): a duration drawn uniformly
// from [0, bound], where
//
//	bound = min(MaxBackoff, InitialBackoff × Multiplier^(retry-1))
//
// with the defaults of [Policy] for zero fields ("full jitter": calls that
// failed together spread their retries over the whole range). A retry
// below 1 is taken as 1. On a Policy that fails [Policy.Validate] the
// result is in [0, MaxBackoff] (0 if that is negative) and otherwise
// unspecified.
//
// Backoff is safe for concurrent use and does not allocate; it draws from
// math/rand/v2's global source, which has no lock to contend on.
func (p Policy) Backoff(retry int) time.Duration {
	bound := p.backoffBound(retry)
	if bound <= 0 {
		return 0
	}
	return time.Duration(rand.Uint64N(uint64(bound) + 1))
}

// backoffBound returns the upper bound of Backoff(retry).
func (p Policy) backoffBound(retry int) time.Duration {
	initial, max, mult := p.backoffParams()
	if max <= 0 || initial <= 0 {
		return 0
	}
	if retry < 1 {
		retry = 1
	}
	f := float64(initial) * math.Pow(mult, float64(retry-1))
	if !(f < float64(max)) { // also catches +Inf and NaN
		return max
	}
	if f <= 0 {
		return 0
	}
	return min(time.Duration(f), max)
}
