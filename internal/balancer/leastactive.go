package balancer

// exactScan is the most backends LeastActive compares on every pick;
// above it, it takes the best of leastSamples random ones.
const (
	exactScan    = 64
	leastSamples = 8
)

// pickLeast takes the backend with the fewest active calls and streams per
// unit of weight — exactly, by a scan, for fleets of up to exactScan
// backends — then its least active connection. Ties go to the backend
// after a rotating start, so equal backends share the calls. Tried
// backends are passed over while an untried one is left.
func (p *Picker) pickLeast(tr *Tried) (Result, bool) {
	n := len(p.backends)
	if n == 1 {
		return p.take(p.backends[0])
	}
	skip := skipTried(tr, n)
	var best *pickBackend
	consider := func(pb *pickBackend) {
		if skip && tr.Has(pb.b) || allFull(pb) {
			return
		}
		if best == nil || lessLoaded(pb, best) {
			best = pb
		}
	}
	r := p.rand()
	if n <= exactScan {
		start := int(r % uint64(n))
		for k := range n {
			consider(p.backends[(start+k)%n])
		}
	} else {
		for range leastSamples {
			consider(p.backends[int(r%uint64(n))])
			r = r*6364136223846793005 + 1442695040888963407
			r ^= r >> 29
		}
	}
	if best == nil {
		return Result{}, false
	}
	if res, ok := p.take(best); ok {
		return res, true
	}
	return Result{}, false // leave it to the round-robin fallback
}

// lessLoaded reports whether a carries less than b per unit of weight.
func lessLoaded(a, b *pickBackend) bool {
	return a.b.Load()*b.weight < b.b.Load()*a.weight
}
