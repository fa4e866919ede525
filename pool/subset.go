package pool

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"

	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/subset"
)

// Membership tells a pool its place in a fleet of clients: its index, in
// [0, count), among count clients that share the same backends. With
// WithSubset, the pool connects only to the backends its index selects,
// and the fleet's clients together spread their connections evenly (see
// docs/fleets.md).
//
// Implementations must be safe for concurrent use: one Membership may
// serve several pools, each calling Watch. StaticMembership is one for
// fleets that know their ordinal; the module
// github.com/grpcpool/grpcpool/etcdmembership keeps one in etcd.
type Membership interface {
	// Watch calls notify with the client's place as soon as it is known and
	// again whenever it changes, until ctx ends; then it returns ctx's
	// error. It returns earlier, with an error, only when it can deliver
	// no more places (the membership was closed or failed for good); the
	// pool keeps the last place it had. notify is never called
	// concurrently with itself, nor after Watch has returned. Places with
	// count < 1 or index outside [0, count) are ignored.
	//
	// Indexes should be stable: when a client leaves, a membership that
	// gives its index to the client with the highest index (rather than
	// shifting every index above it down by one) moves the fewest
	// connections, because a client's subset depends on its index alone.
	Watch(ctx context.Context, notify func(index, count int)) error
}

// StaticMembership is the place of a client that knows it for its whole
// life: a StatefulSet ordinal, a job's completion index, a shard number.
// index must be in [0, count) and count at least 1; otherwise WithSubset
// makes New fail with ErrInvalidOption. The result is safe for concurrent
// use.
func StaticMembership(index, count int) Membership {
	return staticMembership{index: index, count: count}
}

type staticMembership struct{ index, count int }

func (m staticMembership) Watch(ctx context.Context, notify func(index, count int)) error {
	if err := m.validate(); err != nil {
		return err
	}
	notify(m.index, m.count)
	<-ctx.Done()
	return ctx.Err()
}

func (m staticMembership) validate() error {
	switch {
	case m.count < 1:
		return fmt.Errorf("StaticMembership(%d, %d): count must be at least 1", m.index, m.count)
	case m.index < 0 || m.index >= m.count:
		return fmt.Errorf("StaticMembership(%d, %d): index must be in [0, %d)", m.index, m.count, m.count)
	}
	return nil
}

// subsetter chooses the backends of a pool with WithSubset and follows its
// membership. Select and place are safe for concurrent use; last and
// hasLast are guarded by the Pool's mu.
type subsetter struct {
	size int
	m    Membership

	mu    sync.Mutex // guards index, count and known
	index int
	count int
	known bool
	// provisional is the index used until the membership has reported:
	// a random one, so that a fleet starting at once spreads as random
	// subsetting would rather than piling on one subset.
	provisional int

	last    resolver.State // the last resolver state applied; guarded by Pool.mu
	hasLast bool
}

func newSubsetter(size int, m Membership) *subsetter {
	s := &subsetter{size: size, m: m, provisional: rand.IntN(1 << 20)}
	if sm, ok := m.(staticMembership); ok {
		s.index, s.count, s.known = sm.index, sm.count, true
	}
	return s
}

// Select returns the keys of keys this client connects to: all of them
// when there are at most size, else size of them chosen by the client's
// index (or, before the membership has reported, a provisional random
// index). With zones (zones[i] the zone of keys[i]; nil: none), the
// subset has the zones in the fleet's proportions (subset.SelectZones).
func (s *subsetter) Select(keys, zones []string) []string {
	s.mu.Lock()
	index := s.index
	if !s.known {
		index = s.provisional
	}
	s.mu.Unlock()
	if zones != nil {
		return subset.SelectZones(keys, zones, index, s.size)
	}
	return subset.Select(keys, index, s.size)
}

// place records a place reported by the membership and says whether the
// subset may have changed (the first place, or a new index: the choice
// does not depend on count).
func (s *subsetter) place(index, count int) bool {
	if count < 1 || index < 0 || index >= count {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := !s.known || s.index != index
	s.index, s.count, s.known = index, count, true
	return changed
}

// run follows the membership until ctx ends, calling changed whenever the
// subset may have changed. A static membership needs no goroutine.
func (s *subsetter) run(ctx context.Context, changed func()) error {
	if _, ok := s.m.(staticMembership); ok {
		return nil
	}
	return s.m.Watch(ctx, func(index, count int) {
		if s.place(index, count) {
			changed()
		}
	})
}

// subsetLocked is the hook of updateState: it remembers s, for re-applying
// when the place changes, and keeps the groups whose key the subset
// selects, in their resolver order; with WithZone, the subset keeps the
// zones' proportions. Without WithSubset it returns gs.
func (p *Pool) subsetLocked(s resolver.State, gs []core.Group) []core.Group {
	sub := p.o.subset
	if sub == nil {
		return gs
	}
	sub.last, sub.hasLast = s, true
	keys := make([]string, len(gs))
	var zones []string
	if p.o.zones.zone != "" {
		zones = make([]string, len(gs))
	}
	for i, g := range gs {
		keys[i] = g.Key
		if zones != nil {
			zones[i] = g.Zone
		}
	}
	keep := make(map[string]bool, sub.size)
	for _, k := range sub.Select(keys, zones) {
		keep[k] = true
	}
	out := gs[:0:0]
	for _, g := range gs {
		if keep[g.Key] {
			out = append(out, g)
		}
	}
	return out
}

// startSubset follows the membership of a pool with WithSubset: when the
// place changes, the last resolver state is applied again, so the pool
// connects to its new subset and drains what it no longer uses.
func (p *Pool) startSubset() {
	sub := p.o.subset
	if sub == nil {
		return
	}
	p.watchAsync("membership Watch", "place", func() error {
		return sub.run(p.ctx, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if sub.hasLast {
				_ = p.updateStateLocked(sub.last)
			}
		})
	})
}

// watchAsync runs watch (a membership's) on a goroutine of the pool. A
// watch that panics must not take the process down, and one that ends
// before the pool closes is logged: either way the pool keeps what it
// had last (name is the watch, what is what it delivers).
func (p *Pool) watchAsync(name, what string, watch func() error) {
	p.goAsync(func() {
		defer func() {
			if r := recover(); r != nil {
				p.log.Error("grpcpool: "+name+" panicked; keeping the last "+what, "target", p.target, "panic", r)
			}
		}()
		if err := watch(); err != nil && p.ctx.Err() == nil {
			p.log.Error("grpcpool: "+name+" ended; keeping the last "+what, "target", p.target, "err", err)
		}
	})
}
