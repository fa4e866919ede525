package core

// pickRoundRobin takes backends in turn (by the smooth weighted schedule
// when weights differ), then the chosen backend's connections in turn.
// The turn is a ticket from the global counter while picks do not
// collide, from the calling P's block when they do (see counters). A
// backend in slow start takes the call with probability its ramp factor;
// otherwise the call goes to a random backend that is not ramping. A backend that refuses is followed
// by every other distinct backend before the pick gives up, and tried
// backends are passed over while an untried one is left.
func (p *Picker) pickRoundRobin(tr *Tried, why *refusals) (Result, bool) {
	n := len(p.backends)
	cycle := n
	if p.sched != nil {
		cycle = p.sched.Len()
	}
	s := p.ctr.pin()
	t := p.ctr.ticket(s, uint64(cycle))
	unpin()
	round := uint32(t / uint64(cycle))
	skip := skipTried(tr, n)
	first := -1
	if p.sched != nil {
		first = p.sched.Pick(t)
	} else {
		first = int(t % uint64(n))
	}
	if p.ramping && !p.admit(p.backends[first]) {
		first = p.unramped(first)
	}
	if pb := p.backends[first]; !(skip && tr.Has(pb.b)) {
		if r, ok := p.takeAt(pb, round, why); ok {
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
		if r, ok := p.takeAt(pb, round, why); ok {
			return r, true
		}
	}
	if skip {
		return p.pickRoundRobin(nil, why)
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
