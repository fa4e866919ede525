package core

import (
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// PeakEWMA's defaults (Linkerd's): the estimate decays with a time
// constant of 10 s, and a failure counts as a 5 s latency unless the
// server sent grpc-retry-pushback-ms.
const (
	DefaultEWMADecay      = 10 * time.Second
	DefaultFailurePenalty = 5 * time.Second
)

// ewmaCfg is PeakEWMA's configuration, shared by a Core's backends.
type ewmaCfg struct {
	clock   *clock
	tau     float64 // decay time constant, ns
	penalty time.Duration
}

// latency is a backend's peak-sensitive latency estimate. It is safe for
// concurrent use and lock-free: the estimate is a float64 in an atomic
// word, updated by compare-and-swap; its time is stored after it, so a
// reader that catches the two apart decays one estimate by a slightly
// wrong time, which costs nothing worth a lock.
type latency struct {
	cfg *ewmaCfg      // nil: not PeakEWMA, Observe does nothing
	est atomic.Uint64 // math.Float64bits of the estimate in ns; 0: none yet
	at  atomic.Int64  // clock time of the last update
}

// newEWMACfg is PeakEWMA's configuration for a Core of cfg.
func newEWMACfg(cfg Config, c *clock) *ewmaCfg {
	tau := cfg.EWMADecay
	if tau <= 0 {
		tau = DefaultEWMADecay
	}
	pen := cfg.FailurePenalty
	if pen <= 0 {
		pen = DefaultFailurePenalty
	}
	return &ewmaCfg{clock: c, tau: float64(tau), penalty: pen}
}

// Observe records how one attempt on the backend went: its latency, or,
// when it failed, the server's pushback (grpc-retry-pushback-ms) if it
// sent one and the failure penalty otherwise. A latency above the
// estimate replaces it (the peak); one below moves it by the weight the
// time since the last update gives: est·w + latency·(1−w), w = e^(−Δt/τ).
// It does nothing unless the policy is PeakEWMA. It is safe for concurrent
// use.
func (h *BackendHot) Observe(d time.Duration, failed bool, pushback time.Duration) {
	e := &h.ewma
	cfg := e.cfg
	if cfg == nil {
		return
	}
	if failed {
		d = cfg.penalty
		if pushback > 0 {
			d = pushback
		}
	}
	v := float64(max(d, 0))
	now := cfg.clock.now()
	for {
		old := e.est.Load()
		prev := math.Float64frombits(old)
		next := v
		if old != 0 && v < prev {
			w := math.Exp(-float64(max(now-e.at.Load(), 0)) / cfg.tau)
			next = prev*w + v*(1-w)
		}
		next = max(next, 1) // 0 means "none yet"
		if e.est.CompareAndSwap(old, math.Float64bits(next)) {
			e.at.Store(now)
			return
		}
	}
}

// estimate is the latency estimate decayed to now (towards zero, so a
// backend that is not called is tried again in time), 0 when none yet.
func (e *latency) estimate(now int64) float64 {
	v := math.Float64frombits(e.est.Load())
	if v == 0 {
		return 0
	}
	return v * math.Exp(-float64(max(now-e.at.Load(), 0))/e.cfg.tau)
}

// estimateOf is b's estimate at now, raised, while b has unary calls in
// flight, to the time since its last call ended: a backend that has
// turned slow shows it before its first slow call ends, since nothing
// ends there. (Streams do not count: a stream may rightly stay open and
// silent.) A backend with no estimate yet has no last call either: it is
// not raised, and its load alone counts; nor is one whose first estimate
// is stored and its time not yet (Observe and seed store the value first).
func estimateOf(b *Backend, now int64) float64 {
	v := b.ewma.estimate(now)
	if at := b.ewma.at.Load(); v > 0 && at != 0 && b.Calls.Load() > 0 {
		v = max(v, float64(now-at))
	}
	return v
}

// latencyFloor is added to every estimate in the cost: latencies that
// differ by less than about a millisecond are not told apart, so load
// decides between them. Without it a backend whose first samples happened
// to be 50 µs against others' 2 ms would take 40 times their calls in
// flight before its cost caught up — all of them, if it has turned slow
// and none of its calls has finished yet to say so.
const latencyFloor = float64(time.Millisecond)

// costOf is PeakEWMA's cost of pb at now, whose latency estimate is est:
// the estimate plus latencyFloor, times the calls and streams it carries
// plus one, per unit of weight and of slow start.
func costOf(p *Picker, pb *pickBackend, est float64, now int64) float64 {
	c := (est + latencyFloor) * float64(pb.b.Load()+1) / float64(pb.weight)
	if pb.rampAt != 0 {
		c /= p.ss.factor(pb.rampAt, now)
	}
	return c
}

// Outliers: a backend whose latency estimate is more than outlierRatio
// times the other candidate's plus outlierSlack loses to it whatever the
// loads (after Bigtable's pool, which scores a backend at 3× its cohort's
// median latency an outlier). Without it a backend 50 ms slower wins
// whenever est × (active + 1) of a fast one climbs past 50 ms, which 32
// callers on three backends with a few milliseconds of peak do.
const (
	outlierRatio = 3
	outlierSlack = float64(2 * time.Millisecond)
)

// cheaper reports whether a costs less than b at now: the latency
// outlier loses whatever the loads, else the lower cost wins.
func cheaper(p *Picker, a, b *pickBackend, now int64) bool {
	ea, eb := estimateOf(a.b, now), estimateOf(b.b, now)
	switch {
	case ea > outlierRatio*eb+outlierSlack:
		return false
	case eb > outlierRatio*ea+outlierSlack:
		return true
	}
	return costOf(p, a, ea, now) < costOf(p, b, eb, now)
}

// peakEWMA is the PeakEWMA policy: the cheaper of two random backends by
// a cost that folds each one's load and its peak-sensitive latency
// estimate (kept on the backend, which its calls' ends feed: see
// BackendHot.Observe), then its least active connection; round-robin when
// that backend refuses.
type peakEWMA struct {
	cfg *ewmaCfg   // how its backends' estimates are folded
	rr  roundRobin // the fallback
}

func (pe *peakEWMA) fallback() *roundRobin { return &pe.rr }

func (pe *peakEWMA) next(*Picker, []*Backend, uint64) policy { return pe }

func (pe *peakEWMA) pick(p *Picker, _ uint64, _ bool) (r Result, o Outcome, why refusals, done bool) {
	r, done = pe.take(p, nil, &why)
	return r, outcomeOf(done), why, done
}

func (pe *peakEWMA) retry(p *Picker, _ uint64, _ bool, tried Tried) (r Result, o Outcome, why refusals, done bool) {
	r, done = pe.take(p, &tried, &why)
	return r, outcomeOf(done), why, done
}

// take takes the cheaper of two distinct random backends (power of two
// choices over the cost), or for a retry the cheapest untried one.
func (pe *peakEWMA) take(p *Picker, tr *Tried, why *refusals) (Result, bool) {
	bs := p.backends
	n := len(bs)
	if n == 1 {
		return p.take(bs[0], true, why)
	}
	now := p.clock.now()
	var best *pickBackend
	if skipTried(tr, n) {
		bc := 0.0
		for _, pb := range bs {
			if tr.Has(pb.b) || allFull(pb) {
				continue
			}
			if c := costOf(p, pb, estimateOf(pb.b, now), now); best == nil || c < bc {
				best, bc = pb, c
			}
		}
	} else {
		r := p.rand()
		i := int(r % uint64(n))
		j := int((r >> 32) % uint64(n-1))
		if j >= i {
			j++
		}
		a, b := bs[i], bs[j]
		if allFull(a) {
			a, b = b, a
		}
		best = a
		if !allFull(b) && cheaper(p, b, a, now) {
			best = b
		}
		if allFull(best) {
			return Result{}, false
		}
	}
	if best == nil {
		return Result{}, false
	}
	return p.take(best, true, why)
}

// seeder gives a backend that has no latency estimate yet the median of
// the others' (when some have one), so it neither wins every pick by
// looking free nor loses every pick to backends that have one. One seeder
// serves one picker build: the median is taken once, when the first
// backend needs it (a backend seeded with it leaves the median as it
// was), so a fleet of n new backends costs O(n log n), not n².
type seeder struct {
	done   bool
	now    int64
	median float64 // 0: no backend has an estimate
}

func (s *seeder) seed(k *Core, b *Backend) {
	if b.ewma.cfg == nil || b.pb == nil || b.ewma.est.Load() != 0 {
		return
	}
	if !s.done {
		s.done, s.now = true, k.clock.at(k.at)
		s.median = medianEstimate(k.order, s.now)
	}
	if s.median > 0 && b.ewma.est.CompareAndSwap(0, math.Float64bits(s.median)) {
		b.ewma.at.Store(s.now)
	}
}

// medianEstimate is the median of the estimates of the backends that
// have one at now, 0 when none has.
func medianEstimate(bs []*Backend, now int64) float64 {
	var ests []float64
	for _, x := range bs {
		if v := x.ewma.estimate(now); v > 0 {
			ests = append(ests, v)
		}
	}
	if len(ests) == 0 {
		return 0
	}
	slices.Sort(ests)
	m := ests[len(ests)/2]
	if len(ests)%2 == 0 {
		m = (ests[len(ests)/2-1] + m) / 2
	}
	return m
}
