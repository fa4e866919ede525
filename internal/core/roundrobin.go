package core

import (
	"slices"

	"github.com/grpcpool/grpcpool/internal/wrr"
)

// roundRobin is the RoundRobin policy, and the fallback of the others
// when the backend they chose refuses: backends in turn, by the smooth
// weighted schedule when their weights differ.
type roundRobin struct {
	sched   *wrr.Schedule // with unequal weights; nil otherwise
	weights []uint32      // the weights sched was built for
	// least marks the fallback of LeastActive and PeakEWMA: the weights
	// are left to the policy (no schedule), and a backend's least active
	// connection takes the call rather than the next in turn.
	least bool
}

func (rr *roundRobin) next(q *Picker, _ []*Backend, _ uint64) policy {
	n := rr.following(q)
	if n.sched == rr.sched {
		return rr // immutable: the same schedule, the same value
	}
	changed := n // allocated only here: most pickers keep the value
	return &changed
}

// following is rr for picker q: its schedule kept while q's weights are
// those it was built for, rebuilt when they differ, dropped when they are
// all equal.
func (rr roundRobin) following(q *Picker) roundRobin {
	if rr.least || !weighted(q.backends) {
		rr.sched, rr.weights = nil, nil
		return rr
	}
	ws := make([]uint32, len(q.backends))
	for i, pb := range q.backends {
		ws[i] = pb.b.weight
	}
	if rr.sched == nil || !slices.Equal(rr.weights, ws) {
		rr.sched, rr.weights = wrr.New(ws), ws
	}
	return rr
}

// weighted reports whether some backend's weight is not 1.
func weighted(pbs []*pickBackend) bool {
	for _, pb := range pbs {
		if pb.b.weight != 1 {
			return true
		}
	}
	return false
}

func (rr *roundRobin) pick(p *Picker, _ uint64, _ bool) (r Result, o Outcome, why refusals, done bool) {
	r, done = rr.take(p, nil, &why)
	return r, outcomeOf(done), why, done
}

func (rr *roundRobin) retry(p *Picker, _ uint64, _ bool, tried Tried) (r Result, o Outcome, why refusals, done bool) {
	r, done = rr.take(p, &tried, &why)
	return r, outcomeOf(done), why, done
}

func (*roundRobin) fallback() *roundRobin { return nil }

// take takes backends in turn (by the smooth weighted schedule when
// weights differ), then the chosen backend's connections in turn. The
// turn is a ticket from the global counter while picks do not collide,
// from the calling P's block when they do (see counters). A backend in
// slow start takes the call with probability its ramp factor; otherwise
// the call goes to a random backend that is not ramping. A backend that
// refuses is followed by every other distinct backend before the pick
// gives up, and tried backends are passed over while an untried one is
// left.
func (rr *roundRobin) take(p *Picker, tr *Tried, why *refusals) (Result, bool) {
	n := len(p.backends)
	cycle := n
	if rr.sched != nil {
		cycle = rr.sched.Len()
	}
	s := p.ctr.pin()
	t := p.ctr.ticket(s, uint64(cycle))
	unpin()
	round := uint32(t / uint64(cycle))
	skip := skipTried(tr, n)
	first := -1
	if rr.sched != nil {
		first = rr.sched.Pick(t)
	} else {
		first = int(t % uint64(n))
	}
	if p.ramping && !p.admit(p.backends[first]) {
		first = p.unramped(first)
	}
	if pb := p.backends[first]; !(skip && tr.Has(pb.b)) {
		if r, ok := p.takeAt(pb, round, rr.least, why); ok {
			return r, true
		}
	}
	start := int(t % uint64(n))
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		if i == first {
			continue
		}
		pb := p.backends[i]
		if skip && tr.Has(pb.b) {
			continue
		}
		if r, ok := p.takeAt(pb, round, rr.least, why); ok {
			return r, true
		}
	}
	if skip {
		return rr.take(p, nil, why)
	}
	return Result{}, false
}

// unramped returns a random backend that is not in slow start, or i when
// every one is.
func (p *Picker) unramped(i int) int {
	n := len(p.backends)
	r := p.rand()
	for range n {
		j := int(r % uint64(n))
		if p.backends[j].rampAt == 0 {
			return j
		}
		r = r*6364136223846793005 + 1442695040888963407
	}
	return i
}
