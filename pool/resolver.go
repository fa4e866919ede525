package pool

import (
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/grpcpool/grpcpool/internal/core"
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

// updateState applies a resolver update: new addresses get connections,
// removed ones are drained.
func (p *Pool) updateState(s resolver.State) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.updateStateLocked(s)
}

func (p *Pool) updateStateLocked(s resolver.State) error {
	gs := p.subsetLocked(s, p.groups(s))
	p.core.Resolved(time.Now(), gs)
	p.core.Flush()
	if len(gs) == 0 {
		return errNoAddresses
	}
	return nil
}

func (p *Pool) resolverError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.core.ResolverError(time.Now(), err)
	p.core.Flush()
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

// resolveSoon is resolveNow at most once a second, on a goroutine of its
// own (a resolver may report back synchronously): connections that fail ask
// for it, as gRPC's own channel does.
func (p *Pool) resolveSoon() {
	now := time.Now().UnixNano()
	last := p.lastResolveNow.Load()
	if now-last < int64(time.Second) || !p.lastResolveNow.CompareAndSwap(last, now) {
		return
	}
	p.goAsync(p.resolveNow)
}

// jitter returns d ±10 %.
func jitter(d time.Duration) time.Duration { return core.Jitter(d) }

// staticBuilder resolves a pool connection's target to its backend's
// addresses, attributes and all, and gives the connection the pool target's
// authority, so TLS checks the target's host name, never the dialed IP.
// attrs carry the connection to the leaf core.
//
// Every pool connection is made with the pool's own target, as the user
// wrote it, and a staticBuilder under each scheme grpc.NewClient may look
// up for it (connSchemes): grpc then names the connection as it names a
// grpc.NewClient of that target (ClientConn.CanonicalTarget), which is the
// grpc.target its stats handlers and OpenTelemetry plugin record.
type staticBuilder struct {
	scheme    string
	addrs     []resolver.Address
	authority string
	attrs     *attributes.Attributes
}

func (b staticBuilder) Scheme() string { return b.scheme }

func (b staticBuilder) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	if err := cc.UpdateState(resolver.State{Addresses: b.addrs, Attributes: b.attrs}); err != nil {
		cc.ReportError(err)
	}
	return nopResolver{}, nil
}

func (b staticBuilder) OverrideAuthority(resolver.Target) string { return b.authority }

// connSchemes returns the schemes grpc.NewClient may resolve the pool
// target t through: its own, and for a target that names no registered
// scheme the default ones (grpc's "dns", or resolver.SetDefaultScheme's).
func connSchemes(t resolver.Target) []string {
	ss := []string{t.URL.Scheme}
	for _, s := range []string{defaultScheme, resolver.GetDefaultScheme()} {
		if !slices.Contains(ss, s) {
			ss = append(ss, s)
		}
	}
	return ss
}

// connDialOptions returns the dial options of a pool connection resolving
// to b's addresses: b under every scheme of the pool's target first, so it
// wins over any resolver of the same scheme among the user's dial options,
// then those, then the leaf policy.
func (p *Pool) connDialOptions(b staticBuilder) []grpc.DialOption {
	bs := make([]resolver.Builder, len(p.schemes))
	for i, s := range p.schemes {
		b.scheme = s
		bs[i] = b
	}
	dos := make([]grpc.DialOption, 0, len(p.dialOpts)+2)
	dos = append(dos, grpc.WithResolvers(bs...))
	dos = append(dos, p.dialOpts...)
	return append(dos, grpc.WithDefaultServiceConfig(leafServiceConfig))
}
