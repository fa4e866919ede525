package core

import (
	"slices"

	"github.com/grpcpool/grpcpool/internal/chash"
	"github.com/grpcpool/grpcpool/internal/wrr"
)

// index builds what q's policy needs beyond its backend list: a weighted
// schedule, a hash ring, reused from the previous picker while the
// backends and weights are the same. The ring covers every resolved
// backend, whether it can take calls or not, so a backend going down or
// coming back moves only its own keys.
func (k *Core) index(q *Picker) { k.indexOver(q, k.order) }

// indexOver is index with the ring over order, the resolved backends of
// q's zone (all of them without zones).
func (k *Core) indexOver(q *Picker, order []*Backend) {
	weighted := false
	for _, pb := range q.backends {
		if pb.b.weight != 1 {
			weighted = true
			break
		}
	}
	if weighted && q.policy != LeastActive && q.policy != PeakEWMA {
		ws := make([]uint32, len(q.backends))
		for i, pb := range q.backends {
			ws[i] = pb.b.weight
		}
		if q.sched == nil || !slices.Equal(q.schedW, ws) {
			q.sched, q.schedW = wrr.New(ws), ws
		}
	} else {
		q.sched, q.schedW = nil, nil
	}
	if q.policy != ConsistentHash {
		return
	}
	if q.ring == nil || q.ringGen != k.ringGen {
		ids := make([]string, len(order))
		ws := make([]uint32, len(order))
		for i, b := range order {
			ids[i], ws[i] = b.Key, b.weight
		}
		q.ring, q.ringGen = chash.New(ids, ws), k.ringGen
	}
	pbOf := make(map[*Backend]*pickBackend, len(q.backends))
	for _, pb := range q.backends {
		pbOf[pb.b] = pb
	}
	q.ringPB = make([]*pickBackend, len(order))
	q.ringStart = make([]bool, len(order))
	for i, b := range order {
		q.ringPB[i] = pbOf[b]
		q.ringStart[i] = q.ringPB[i] == nil && starting(b)
	}
}

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

// pickHash takes the first backend in the key's preference order that can
// take the call: its owner while it can, the next one for that key
// otherwise. While the owner is still starting the call waits for it, so
// a key is served by one backend from its first call. done is false when
// no backend on the ring could take it.
func (p *Picker) pickHash(info PickInfo, why *refusals) (r Result, o Outcome, done bool) {
	tr := info.Tried
	skip := skipTried(tr, len(p.backends))
	wait := false
	i := p.ring.LookupFunc(info.Key, func(i int) bool {
		if wait {
			return true // stop the walk
		}
		pb := p.ringPB[i]
		if pb == nil {
			if p.ringStart[i] && tr.Len() == 0 {
				wait = true
				return true
			}
			return false
		}
		if skip && tr.Has(pb.b) {
			return false
		}
		var ok bool
		r, ok = p.take(pb, why)
		return ok
	})
	if wait {
		return Result{}, Wait, true
	}
	return r, Picked, i >= 0
}
