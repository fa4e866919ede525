package core

import (
	"slices"
	"time"

	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/breaker"
)

// Resolution: the backends the resolver reports, each with its floor of
// connections, and the removed ones, which drain.

// Group is one backend as the resolver reported it.
type Group struct {
	Key    string
	Addrs  []resolver.Address
	Weight uint32
	Zone   string // the backend's zone; "" when unknown
}

// Resolved applies a resolver update: new backends get their floor of
// connections, removed ones drain, weights are updated.
func (k *Core) Resolved(now time.Time, gs []Group) {
	k.at = now
	if k.closed {
		return
	}
	k.resolved, k.resErr = true, nil
	live := make(map[string]bool, len(gs))
	order := make([]*Backend, 0, len(gs))
	for _, g := range gs {
		if live[g.Key] {
			continue
		}
		live[g.Key] = true
		b := k.backends[g.Key]
		if b == nil {
			b = k.addBackend(now, g)
		}
		if w := max(g.Weight, 1); w != b.weight {
			b.weight = w
			k.ringGen++
			k.touch(b)
		}
		order = append(order, b)
	}
	for key, b := range k.backends {
		if !live[key] {
			k.removeBackend(now, b)
		}
	}
	if !sameBackends(k.order, order) {
		k.ringGen++
	}
	k.order = order
	k.publish()
}

// sameBackends reports whether a and b list the same backends, with the
// same weights, in the same order.
func sameBackends(a, b []*Backend) bool {
	return slices.EqualFunc(a, b, func(x, y *Backend) bool { return x == y })
}

// ResolverError records that the resolver failed; calls that find nothing
// to pick say so.
func (k *Core) ResolverError(now time.Time, err error) {
	k.at = now
	if k.closed {
		return
	}
	k.resErr, k.resolved = err, true
	k.log.Debug("grpcpool: resolver error", "target", k.cfg.Target, "err", err)
	k.publish()
}

func (k *Core) addBackend(now time.Time, g Group) *Backend {
	b := &Backend{Key: g.Key, Addrs: g.Addrs, Zone: g.Zone, weight: max(g.Weight, 1), dirty: true}
	b.brkState.Store(int32(breaker.StateClosed))
	if k.cfg.Zone != "" {
		b.zone = k.zoneOf(g.Zone)
		join(b.zone.pol, b)
	} else {
		join(k.picker.pol, b)
	}
	if k.cfg.NewBreaker != nil {
		b.Breaker = k.cfg.NewBreaker(b)
	}
	k.backends[g.Key] = b
	k.ensureFloor(now, b)
	k.log.Debug("grpcpool: backend added", "target", k.cfg.Target, "addr", b.Addr(), "conns", k.cfg.Size)
	return b
}

func (k *Core) removeBackend(now time.Time, b *Backend) {
	delete(k.backends, b.Key)
	b.removed = true
	b.probeTimer.stop()
	b.limitTimer.stop()
	b.rampTimer.stop()
	b.entry.Store(nil)
	k.retired = append(k.retired, b)
	for _, c := range append([]*Conn(nil), b.conns...) {
		k.retire(now, c, "removed")
	}
	k.dropIfDone(b)
	k.log.Debug("grpcpool: backend removed", "target", k.cfg.Target, "addr", b.Addr())
}

// ensureFloor dials connections until b has its size floor of live ones
// (a recycle's replacement does not count until it has replaced).
func (k *Core) ensureFloor(now time.Time, b *Backend) {
	if k.closed || b.removed {
		return
	}
	for n := k.floorCount(b); n < k.cfg.Size; n++ {
		k.dial(now, b)
	}
}

func (k *Core) floorCount(b *Backend) int {
	n := 0
	for _, c := range b.conns {
		if c.state.Live() && c.replaces == nil {
			n++
		}
	}
	return n
}

func liveCount(b *Backend) int {
	n := 0
	for _, c := range b.conns {
		if c.state.Live() {
			n++
		}
	}
	return n
}

func (k *Core) dial(now time.Time, b *Backend) *Conn {
	k.nextID++
	c := &Conn{ID: k.nextID, Backend: b, created: now, transport: connectivity.Idle, state: Starting, idleSince: now}
	c.limit.Store(k.limitFor(b))
	b.conns = append(b.conns, c)
	k.touch(b)
	k.seam.Dial(c)
	if k.cfg.MaxConnAge > 0 {
		c.ageTimer = k.seam.After(k.cfg.Jitter(k.cfg.MaxConnAge), Timer{Kind: AgeTimer, Conn: c})
	}
	return c
}
