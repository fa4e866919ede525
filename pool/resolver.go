package pool

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
)

var errNoAddresses = errors.New("grpcpool: resolver returned no addresses")

// resolverCC is the resolver.ClientConn the pool's resolver reports to.
type resolverCC struct {
	resolver.ClientConn // for methods gRPC may add; never called
	p                   *Pool
}

func (r *resolverCC) UpdateState(s resolver.State) error { return r.p.updateState(s) }

func (r *resolverCC) ReportError(err error) { r.p.resolverError(err) }

func (r *resolverCC) NewAddress(addrs []resolver.Address) {
	_ = r.p.updateState(resolver.State{Addresses: addrs})
}

func (r *resolverCC) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{Err: errors.New("grpcpool: service config is not supported")}
}

// group is one backend as the resolver reported it.
type group struct {
	key   string
	addrs []resolver.Address
}

// groups turns a resolver state into backends: one per address, or one per
// endpoint (with all its addresses) for resolvers that report endpoints only.
func groups(s resolver.State) []group {
	var gs []group
	seen := make(map[string]bool)
	add := func(addrs []resolver.Address) {
		if len(addrs) == 0 {
			return
		}
		k := addrKey(addrs[0])
		if seen[k] {
			return
		}
		seen[k] = true
		gs = append(gs, group{key: k, addrs: addrs})
	}
	if len(s.Addresses) > 0 {
		for _, a := range s.Addresses {
			add([]resolver.Address{a})
		}
		return gs
	}
	for _, e := range s.Endpoints {
		add(e.Addresses)
	}
	return gs
}

func addrKey(a resolver.Address) string {
	if a.ServerName != "" {
		return a.Addr + "|" + a.ServerName
	}
	return a.Addr
}

// updateState applies a resolver update: new addresses get connections,
// removed ones are drained.
func (p *Pool) updateState(s resolver.State) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.updateStateLocked(s)
}

func (p *Pool) updateStateLocked(s resolver.State) error {
	gs := p.subsetLocked(s, groups(s))
	if p.closing {
		return nil
	}
	p.resolved = true
	p.resErr = nil
	live := make(map[string]bool, len(gs))
	order := make([]*backend, 0, len(gs))
	for _, g := range gs {
		live[g.key] = true
		b := p.backends[g.key]
		if b == nil {
			b = p.addBackendLocked(g)
		} else {
			b.weight = weightOf(g.addrs[0]) // its connections keep the addresses they have
		}
		order = append(order, b)
	}
	for k, b := range p.backends {
		if !live[k] {
			p.removeBackendLocked(b)
		}
	}
	p.order = order
	p.rebuildLocked()
	if len(gs) == 0 {
		return errNoAddresses
	}
	return nil
}

func (p *Pool) resolverError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return
	}
	p.resErr = err
	p.resolved = true // the first resolution has ended, badly
	p.log.Debug("grpcpool: resolver error", "target", p.target, "err", err)
	p.rebuildLocked()
}

// resolveLoop asks the resolver to resolve again every resolve interval.
func (p *Pool) resolveLoop() {
	defer p.wg.Done()
	t := time.NewTimer(jitter(p.o.resolveInterval))
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
			p.resolveNow()
			t.Reset(jitter(p.o.resolveInterval))
		}
	}
}

// resolveNow asks the resolver for a new resolution.
func (p *Pool) resolveNow() {
	p.resMu.Lock()
	defer p.resMu.Unlock()
	if p.res != nil {
		p.res.ResolveNow(resolver.ResolveNowOptions{})
	}
}

// resolveSoon is resolveNow at most once a second: connections that fail
// ask for it, as gRPC's own channel does.
func (p *Pool) resolveSoon() {
	now := time.Now().UnixNano()
	last := p.lastResolveNow.Load()
	if now-last < int64(time.Second) || !p.lastResolveNow.CompareAndSwap(last, now) {
		return
	}
	p.resolveNow()
}

// jitter returns d ±10 %.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

func describeResolverErr(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf(" (last resolver error: %v)", err)
}
