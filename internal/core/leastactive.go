package core

import "sync/atomic"

// exactScan is the most backends LeastActive compares on every pick.
// Above it, the fleet is picked from exactly by the load floor (see
// pickFloor), weights or not; during a slow start, or for a retry passing
// over tried backends, it takes the best of leastSamples random ones.
const (
	exactScan    = 64
	leastSamples = 8
)

// leastShared is what LeastActive's pickers share across a Core's
// lifetime: a lower bound on the load per unit of weight of every backend
// that takes calls, and per P a backend a release left at it. A backend's
// load per unit of weight is its load times its entry's inv (2^32 over its
// weight; see loadOf), so with equal weights the floor orders backends as
// their loads do.
//
// The floor holds when every backend carries at least floor: the Core
// sets it to the exact minimum with every picker it builds, a release
// that leaves its backend below it lowers it (Conn.Release), and a pick
// raises it only after a scan of every backend found none at it. A pick
// therefore takes any backend at the floor and it is one of the least
// loaded: the hint if it is still there, else the first from its P's
// cursor, which walks the fleet, so a fleet filling up level by level
// costs about one backend read per pick, and a stream that ends is
// replaced on its backend at the cost of one.
type leastShared struct {
	floor atomic.Int64
	large atomic.Bool // the fleet is above exactScan: the floor is in use
	ctr   *counters   // the pickers' shards, which hold the hints
}

// released is called after a call on b ended and left b's load. With the
// floor in use, a backend left below it lowers it, and one left at or
// below it becomes the hint of the releasing P (a per-P slot, so that
// releases write no shared memory).
func (b *Backend) released() {
	ls := b.least
	if ls == nil || !ls.large.Load() {
		return
	}
	pb := b.entry.Load()
	if pb == nil {
		return // it takes no call: no pick reads its load
	}
	l := loadOf(pb)
	for {
		f := ls.floor.Load()
		if l > f {
			return
		}
		if l == f || ls.floor.CompareAndSwap(f, l) {
			break
		}
	}
	s := ls.ctr.pin()
	s.hint.Store(b)
	unpin()
}

// loadOf is pb's load per unit of weight, scaled by 2^32.
func loadOf(pb *pickBackend) int64 { return pb.b.Load() * pb.inv }

// leastActive is the LeastActive policy: the backend with the fewest
// active calls and streams per unit of weight, then its least active
// connection; round-robin when that backend refuses.
type leastActive struct {
	floor *leastShared // the load floor, carried from picker to picker
	rr    roundRobin   // the fallback
}

func (la *leastActive) fallback() *roundRobin { return &la.rr }

// next sets the floor to the exact least load of q's backends, and says
// whether q's fleet is large enough to pick by it.
func (la *leastActive) next(q *Picker, _ []*Backend, _ uint64) policy {
	floor := int64(-1)
	for _, pb := range q.backends {
		if l := loadOf(pb); floor < 0 || l < floor {
			floor = l
		}
	}
	la.floor.floor.Store(max(floor, 0))
	la.floor.large.Store(len(q.backends) > exactScan)
	return la
}

func (la *leastActive) pick(p *Picker, _ uint64, _ bool) (r Result, o Outcome, why refusals, done bool) {
	r, done = la.take(p, nil, &why)
	return r, outcomeOf(done), why, done
}

func (la *leastActive) retry(p *Picker, _ uint64, _ bool, tried Tried) (r Result, o Outcome, why refusals, done bool) {
	r, done = la.take(p, &tried, &why)
	return r, outcomeOf(done), why, done
}

// take takes the backend with the fewest active calls and streams per
// unit of weight — exactly, by a scan, for fleets of up to exactScan
// backends, and by the load floor above it — then
// its least active connection. Ties go to the backend after a rotating
// start, so equal backends share the calls. Tried backends are passed
// over while an untried one is left.
func (la *leastActive) take(p *Picker, tr *Tried, why *refusals) (Result, bool) {
	n := len(p.backends)
	if n == 1 {
		return p.take(p.backends[0], true, why)
	}
	skip := skipTried(tr, n)
	if !skip && !p.ramping {
		if n > exactScan {
			return la.pickFloor(p, why)
		}
		return pickScan(p, why)
	}
	var now int64
	if p.ramping {
		now = p.clock.now()
	}
	var best *pickBackend
	var bestW int64
	consider := func(pb *pickBackend) {
		if skip && tr.Has(pb.b) || allFull(pb) {
			return
		}
		w := p.effWeight(pb, now)
		if best == nil || pb.b.Load()*bestW < best.b.Load()*w {
			best, bestW = pb, w
		}
	}
	r := p.rand()
	if n <= exactScan {
		start := int(r % uint64(n))
		for k := range n {
			i := start + k
			if i >= n {
				i -= n
			}
			consider(p.backends[i])
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
	return p.take(best, true, why) // on refusal: the round-robin fallback
}

// pickScan is the exact scan of a small fleet: every backend's load per
// unit of weight, from a random start; a backend's connections are read
// only when it would win.
func pickScan(p *Picker, why *refusals) (Result, bool) {
	bs := p.backends
	n := len(bs)
	i := int(p.rand() % uint64(n))
	var best *pickBackend
	var bl, bw int64
	for range n {
		pb := bs[i]
		if i++; i == n {
			i = 0
		}
		l := pb.b.Load()
		if best != nil && l*bw >= bl*pb.weight || allFull(pb) {
			continue
		}
		best, bl, bw = pb, l, pb.weight
	}
	if best == nil {
		return Result{}, false
	}
	return p.take(best, true, why)
}

// pickFloor takes a backend at the load floor: the hint, else the first
// at it from this P's cursor. A scan that goes round the whole fleet
// without finding one has seen the true minimum: it raises the floor to
// it and takes that backend.
func (la *leastActive) pickFloor(p *Picker, why *refusals) (Result, bool) {
	ls := la.floor
	floor := ls.floor.Load()
	s := p.ctr.pin()
	h := s.hint.Load()
	if h != nil {
		s.hint.Store(nil)
	}
	cur := s.cursor.Load()
	unpin()
	if h != nil {
		if pb := h.entry.Load(); pb != nil && loadOf(pb) <= floor && !allFull(pb) {
			if r, ok := p.take(pb, true, why); ok {
				return r, true
			}
		}
	}
	bs := p.backends
	n := len(bs)
	start := int(cur % uint64(n))
	var best *pickBackend
	bestI, bestL := -1, int64(0)
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		pb := bs[i]
		l := loadOf(pb)
		if l <= floor {
			if !allFull(pb) {
				best, bestI = pb, i
				break
			}
			continue
		}
		if (best == nil || l < bestL) && !allFull(pb) {
			best, bestI, bestL = pb, i, l
		}
		if k == n-1 && best != nil {
			ls.floor.CompareAndSwap(floor, bestL)
		}
	}
	if best == nil {
		return Result{}, false
	}
	s = p.ctr.pin()
	s.cursor.Store(uint64(bestI + 1))
	unpin()
	return p.take(best, true, why)
}
