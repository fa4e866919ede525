package backend

import "math"

// MaxOverMean measures how evenly work was spread over backends, given one
// non-negative count per backend (Calls, ActiveStreams, …): the largest
// count divided by the mean count. 1 is a perfectly even spread; len(counts)
// is everything on one backend. When counts is empty or adds up to zero the
// spread is undefined and it returns +Inf, so a check such as
// MaxOverMean(c) <= 1.5 fails rather than passes on no data.
func MaxOverMean(counts []int64) float64 {
	var sum, hi int64
	for _, c := range counts {
		sum += c
		hi = max(hi, c)
	}
	if sum <= 0 {
		return math.Inf(1)
	}
	return float64(hi) * float64(len(counts)) / float64(sum)
}
