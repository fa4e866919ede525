package core

// A policy is how a picker chooses the backend of a call — round-robin
// (roundrobin.go), least-active (leastactive.go), consistent-hash
// (hash.go) or PeakEWMA (peakewma.go) — each a type that owns its state:
// the weighted schedule, the load floor, the hash ring, the cost model —
// and builds the value of the next picker from its own (next), carrying
// over what still fits, as httplb's NewPowerOfTwo(prev, conns) does. The
// Picker holds the backends, the per-P counters, the slow start and the
// taking of a connection, which every policy shares; zone-aware routing
// (zonepick.go) gives each zone a picker, and so a policy value, of its
// own.
//
// A policy value is immutable once its picker is published, and safe for
// concurrent use; what it carries that calls change (the load floor, the
// per-P counters) is atomic.
type policy interface {
	// pick places the first attempt of a call on a backend of p it
	// chooses, or on another when that one refuses. key is the hash of
	// the call's key (chash.Hash) when hasKey. done is false when no
	// backend took the call, and why says what refused it.
	//
	// Nothing that points into the caller's frame is passed: whatever
	// goes through an interface method escapes, and escape analysis does
	// not tell a struct's fields apart, so a pointer to the call's
	// Tried or refusals, or the key's string, would move the caller's
	// PickInfo and Tried to the heap, an allocation on every call.
	pick(p *Picker, key uint64, hasKey bool) (r Result, o Outcome, why refusals, done bool)

	// retry is pick for a later attempt; tried holds the backends the
	// earlier ones went to (a copy, for the reason above; a first attempt
	// does not pay for it).
	retry(p *Picker, key uint64, hasKey bool, tried Tried) (r Result, o Outcome, why refusals, done bool)

	// fallback is the round-robin that takes a call pick did not place
	// (the backend it chose refused), nil for round-robin itself.
	fallback() *roundRobin

	// next returns the policy of q, the picker that follows the one this
	// policy belongs to (or, for a new policy, the first one). q's
	// backends are set; order is the resolved backends q's backends are
	// drawn from (all of the Core's, or those of q's zone) and gen the
	// Core's ringGen, which changes when they or their weights do.
	next(q *Picker, order []*Backend, gen uint64) policy
}

// newPolicy returns the policy value a chain of pickers starts from (the
// Core's, or a zone's): no schedule or ring yet; under LeastActive a load
// floor of its own, whose releases go through ctr's per-P hints; under
// PeakEWMA the configuration of its backends' latency estimates.
func newPolicy(cfg Config, ctr *counters, c *clock) policy {
	switch cfg.Policy {
	case LeastActive:
		return &leastActive{floor: &leastShared{ctr: ctr}, rr: roundRobin{least: true}}
	case ConsistentHash:
		return &consistentHash{}
	case PeakEWMA:
		return &peakEWMA{cfg: newEWMACfg(cfg, c), rr: roundRobin{least: true}}
	}
	return &roundRobin{}
}

// join gives b, on its way into the pickers of pol's chain, what the
// policy needs of it: the load floor its releases lower (LeastActive),
// the configuration its latency estimate is folded by (PeakEWMA).
func join(pol policy, b *Backend) {
	switch pol := pol.(type) {
	case *leastActive:
		b.least = pol.floor
	case *peakEWMA:
		b.ewma.cfg = pol.cfg
	}
}
