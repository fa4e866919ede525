package core

import "github.com/grpcpool/grpcpool/internal/chash"

// consistentHash is the ConsistentHash policy: a call with a key goes to
// the first backend in the key's preference order on the ring that can
// take it; a call without one, or that no backend on the ring takes,
// goes round-robin, by weight.
type consistentHash struct {
	ring  *chash.Table   // over every resolved backend of the picker's chain
	gen   uint64         // the Core's ringGen when ring was built
	owner []*pickBackend // ring index → its entry in the picker's backends; nil when it cannot take calls
	start []bool         // ring index → the backend is still starting: its keys wait
	rr    roundRobin     // the fallback
}

// next keeps the ring while the resolved backends and their weights are
// those it was built for. The ring covers every resolved backend, whether
// it can take calls or not, so a backend going down or coming back moves
// only its own keys.
func (ch *consistentHash) next(q *Picker, order []*Backend, gen uint64) policy {
	n := &consistentHash{ring: ch.ring, gen: ch.gen, rr: ch.rr.following(q)}
	if n.ring == nil || n.gen != gen {
		ids := make([]string, len(order))
		ws := make([]uint32, len(order))
		for i, b := range order {
			ids[i], ws[i] = b.Key, b.weight
		}
		n.ring, n.gen = chash.New(ids, ws), gen
	}
	pbOf := make(map[*Backend]*pickBackend, len(q.backends))
	for _, pb := range q.backends {
		pbOf[pb.b] = pb
	}
	n.owner = make([]*pickBackend, len(order))
	n.start = make([]bool, len(order))
	for i, b := range order {
		n.owner[i] = pbOf[b]
		n.start[i] = n.owner[i] == nil && starting(b)
	}
	return n
}

func (ch *consistentHash) pick(p *Picker, key uint64, hasKey bool) (r Result, o Outcome, why refusals, done bool) {
	if !hasKey || ch.ring == nil {
		return Result{}, Fail, why, false
	}
	r, o, done = ch.take(p, key, nil, &why)
	return r, o, why, done
}

func (ch *consistentHash) retry(p *Picker, key uint64, hasKey bool, tried Tried) (r Result, o Outcome, why refusals, done bool) {
	if !hasKey || ch.ring == nil {
		return Result{}, Fail, why, false
	}
	r, o, done = ch.take(p, key, &tried, &why)
	return r, o, why, done
}

func (ch *consistentHash) fallback() *roundRobin { return &ch.rr }

// starting reports whether b has not settled yet: none of its connections
// has finished a first attempt, and none has failed.
func starting(b *Backend) bool {
	any := false
	for _, c := range b.conns {
		if !c.state.Live() {
			continue
		}
		if c.state != Starting {
			return false
		}
		any = true
	}
	return any
}

// take takes the first backend in the preference order of the key whose
// hash is key that can
// take the call: its owner while it can, the next one for that key
// otherwise. While the owner is still starting the call waits for it, so
// a key is served by one backend from its first call. done is false when
// no backend on the ring could take it.
func (ch *consistentHash) take(p *Picker, key uint64, tr *Tried, why *refusals) (r Result, o Outcome, done bool) {
	skip := skipTried(tr, len(p.backends))
	wait := false
	i := ch.ring.LookupHashFunc(key, func(i int) bool {
		if wait {
			return true // stop the walk
		}
		pb := ch.owner[i]
		if pb == nil {
			if ch.start[i] && tr.Len() == 0 {
				wait = true
				return true
			}
			return false
		}
		if skip && tr.Has(pb.b) {
			return false
		}
		var ok bool
		r, ok = p.take(pb, false, why)
		return ok
	})
	if wait {
		return Result{}, Wait, true
	}
	return r, Picked, i >= 0
}
