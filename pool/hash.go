package pool

import (
	"context"
	"strconv"
	"strings"

	"google.golang.org/grpc/metadata"

	"github.com/grpcpool/grpcpool/internal/chash"
)

// WithHashKey makes ConsistentHash read each call's key from its outgoing
// metadata under key (case-insensitive; the first value counts). Calls
// without it are spread round-robin. An empty key makes New fail.
func WithHashKey(key string) Option {
	return optionFunc(func(o *options) {
		if key == "" {
			o.fail("WithHashKey: empty metadata key")
			return
		}
		o.hashKey = strings.ToLower(key)
	})
}

// WithHashKeyFunc makes ConsistentHash take each call's key from f, which
// reports false for calls without a key (they are spread round-robin). It
// takes precedence over WithHashKey. f must be safe for concurrent use and
// fast: it runs on every call. A nil f makes New fail.
func WithHashKeyFunc(f func(ctx context.Context, method string) (string, bool)) Option {
	return optionFunc(func(o *options) {
		if f == nil {
			o.fail("WithHashKeyFunc: nil function")
			return
		}
		o.hashKeyFunc = f
	})
}

func (p *Pool) hashKey(ctx context.Context, method string) (string, bool) {
	if f := p.o.hashKeyFunc; f != nil {
		return f(ctx, method)
	}
	if p.o.hashKey == "" {
		return "", false
	}
	if v := metadata.ValueFromOutgoingContext(ctx, p.o.hashKey); len(v) > 0 {
		return v[0], true
	}
	return "", false
}

// pickHash takes the first backend in key's preference order that can take
// the call: its own while it can, the next one for that key otherwise.
func (p *Pool) pickHash(s *snapshot, key string, tr *tried) (pick, bool) {
	var pk pick
	skip := tr != nil && tr.n > 0 && tr.n < len(s.backends)
	i := s.ring.LookupFunc(key, func(i int) bool {
		pb := s.ringPB[i]
		if pb == nil || skip && tr.has(pb.b) {
			return false
		}
		var ok bool
		pk, ok = p.take(pb)
		return ok
	})
	return pk, i >= 0
}

// indexLocked builds what a snapshot's policy needs beyond its backend
// list: a weighted schedule, a hash ring (reused while the backends and
// weights are the same). The ring covers every resolved backend, whether it
// can take calls or not, so a backend going down or coming back moves only
// its own keys: lookups skip the backends that cannot take calls.
func (p *Pool) indexLocked(s *snapshot) {
	weighted := false
	for _, pb := range s.backends {
		if pb.b.weight != 1 {
			weighted = true
			break
		}
	}
	if weighted && p.o.policy != LeastActive {
		ws := make([]uint32, len(s.backends))
		for i, pb := range s.backends {
			ws[i] = pb.b.weight
		}
		s.sched = p.schedFor(ws)
	}
	if p.o.policy == ConsistentHash {
		var sig strings.Builder
		ids := make([]string, len(p.order))
		ws := make([]uint32, len(p.order))
		for i, b := range p.order {
			ids[i], ws[i] = b.key, b.weight
			sig.WriteString(b.key)
			sig.WriteByte('/')
			sig.WriteString(strconv.FormatUint(uint64(b.weight), 10))
			sig.WriteByte(' ')
		}
		if p.ringSig != sig.String() || p.ring == nil {
			p.ring, p.ringSig = chash.New(ids, ws), sig.String()
		}
		s.ring = p.ring
		pbOf := make(map[*backend]*pickBackend, len(s.backends))
		for _, pb := range s.backends {
			pbOf[pb.b] = pb
		}
		s.ringPB = make([]*pickBackend, len(p.order))
		for i, b := range p.order {
			s.ringPB[i] = pbOf[b]
		}
	}
}
