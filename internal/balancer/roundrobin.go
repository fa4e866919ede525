package balancer

// pickRoundRobin takes backends in turn (by the smooth weighted schedule
// when weights differ), then the chosen backend's connections in turn. A
// backend that refuses is followed by every other distinct backend before
// the pick gives up, and tried backends are passed over while an untried
// one is left.
func (p *Picker) pickRoundRobin(tr *Tried) (Result, bool) {
	n := len(p.backends)
	start := p.rr.Add(1)
	skip := skipTried(tr, n)
	first := -1
	if p.sched != nil {
		first = p.sched.Pick(uint64(start))
		pb := p.backends[first]
		if !(skip && tr.Has(pb.b)) {
			if r, ok := p.take(pb); ok {
				return r, true
			}
		}
	}
	for k := range n {
		i := (int(start%uint32(n)) + k) % n
		if i == first {
			continue
		}
		pb := p.backends[i]
		if skip && tr.Has(pb.b) {
			continue
		}
		if r, ok := p.take(pb); ok {
			return r, true
		}
	}
	if skip {
		return p.pickRoundRobin(nil)
	}
	return Result{}, false
}
