package pool

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
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

// UpdateState applies a resolver update: new addresses get connections,
// removed ones are drained.
func (r *resolverCC) UpdateState(s resolver.State) error {
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.updateStateLocked(s)
}

func (r *resolverCC) ReportError(err error) {
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.core.ResolverError(time.Now(), err)
	p.core.Flush()
}

func (r *resolverCC) NewAddress(addrs []resolver.Address) {
	_ = r.UpdateState(resolver.State{Addresses: addrs})
}

func (r *resolverCC) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{Err: errors.New("grpcpool: service config is not supported")}
}

// updateStateLocked applies a resolver update (see resolverCC.UpdateState).
func (p *Pool) updateStateLocked(s resolver.State) error {
	gs := p.subsetLocked(s, p.groups(s))
	p.core.Resolved(time.Now(), gs)
	p.core.Flush()
	if len(gs) == 0 {
		return errNoAddresses
	}
	return nil
}

// resolution drives the pool's resolver: a new resolution every resolve
// interval, and at most once a second when connections fail. It is safe
// for concurrent use.
type resolution struct {
	mu   sync.Mutex // guards res
	res  resolver.Resolver
	last atomic.Int64 // when soon last asked, in Unix nanoseconds
}

// set gives it the pool's resolver, once built.
func (r *resolution) set(res resolver.Resolver) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res = res
}

// close closes the resolver.
func (r *resolution) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.res != nil {
		r.res.Close()
	}
}

// loop asks the resolver to resolve again every interval (±10 %) until
// done is closed.
func (r *resolution) loop(interval time.Duration, done <-chan struct{}) {
	t := time.NewTimer(jitter(interval))
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			r.now()
			t.Reset(jitter(interval))
		}
	}
}

// now asks the resolver for a new resolution.
func (r *resolution) now() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.res != nil {
		r.res.ResolveNow(resolver.ResolveNowOptions{})
	}
}

// soon is now at most once a second, on a goroutine of the pool's (a
// resolver may report back synchronously): connections that fail ask for
// it, as gRPC's own channel does.
func (r *resolution) soon(goAsync func(func())) {
	now := time.Now().UnixNano()
	last := r.last.Load()
	if now-last < int64(time.Second) || !r.last.CompareAndSwap(last, now) {
		return
	}
	goAsync(r.now)
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
