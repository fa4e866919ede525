package etcdmembership

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/pool"
)

// Scheme is the scheme of the targets the resolver of NewResolver serves:
// "etcd:///" followed by the target the backends registered under with
// endpoints.NewManager, as for etcd's own naming resolver.
const Scheme = "etcd"

// Re-watch backoff: after a watch breaks or cannot be made, the resolver
// waits a random duration in [0.8, 1.2] × min(watchBackoffMax,
// watchBackoffBase × 2^(n−1)) for the n-th failure in a row. A watch that
// lasted watchBackoffMax or longer starts the count again.
const (
	watchBackoffBase = 100 * time.Millisecond
	watchBackoffMax  = 5 * time.Second
)

// readTimeout is how long the resolver waits for etcd to answer its read
// of the endpoints before it reports an error to the ClientConn (it goes
// on waiting).
const readTimeout = 5 * time.Second

// Metadata is what a backend puts in its endpoints.Endpoint's Metadata for
// the resolver of NewResolver to read: its zone.
//
//	em, _ := endpoints.NewManager(cli, "services/greeter")
//	err := em.AddEndpoint(ctx, "services/greeter/"+addr, endpoints.Endpoint{
//		Addr:     addr,
//		Metadata: etcdmembership.Metadata{Zone: "eu-west-1a"},
//	}, clientv3.WithLease(lease))
//
// It is stored as JSON ({"zone":"eu-west-1a"}), so registrations written
// by other tools or languages with the same field are read alike.
type Metadata struct {
	// Zone is the backend's zone (an availability zone, a rack: any name
	// the clients' pool.WithZone uses too). Empty means unknown.
	Zone string `json:"zone"`
}

// NewResolver returns a gRPC resolver builder for the "etcd" scheme that
// reports the endpoints registered in etcd through etcd's naming package
// (go.etcd.io/etcd/client/v3/naming/endpoints), each address carrying the
// zone of its endpoint's Metadata (see Metadata and pool.AddressZone).
// etcd's own naming resolver drops the metadata; this one reads it.
//
// The target is "etcd:///" + the endpoints manager's target: for
// endpoints registered with endpoints.NewManager(cli, "services/greeter"),
// "etcd:///services/greeter". Use it with pool.WithResolvers or
// grpc.WithResolvers:
//
//	p, err := pool.New("etcd:///services/greeter",
//		pool.WithResolvers(etcdmembership.NewResolver(cli)), ...)
//
// The resolver reads the endpoints and then watches them: every change is
// reported at once as a resolver.State with one address per endpoint, in
// Addresses and in Endpoints, ordered by key (an address registered under
// two keys is reported once, with the zone of the first key). Metadata may
// be a Metadata, a map with a "zone" string (as JSON decodes it), or
// absent (no zone). When the watch breaks (etcd compacted the revision it
// was at, say) the resolver reads and watches again, with a backoff from
// 100 ms to 5 s. When the read fails, or etcd has not answered it in 5 s,
// the resolver reports an error to the ClientConn, which keeps its last
// addresses, and goes on trying. ResolveNow does nothing: the watch keeps
// the state current.
//
// cli is not closed by the resolver; it must outlive every ClientConn or
// pool built on it. The builder and its resolvers are safe for concurrent
// use.
func NewResolver(cli *clientv3.Client) resolver.Builder {
	return resolverBuilder{cli: cli}
}

type resolverBuilder struct{ cli *clientv3.Client }

func (resolverBuilder) Scheme() string { return Scheme }

// Build starts the resolver's goroutine; it does no I/O itself.
func (b resolverBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	name := strings.TrimSuffix(target.Endpoint(), "/")
	if name == "" {
		return nil, fmt.Errorf("etcdmembership: target %q names no endpoints prefix (want etcd:///<target>)", target.URL.String())
	}
	em, err := endpoints.NewManager(b.cli, name)
	if err != nil {
		return nil, fmt.Errorf("etcdmembership: resolver for %q: %w", name, err)
	}
	return startEndpointsResolver(cc, em.NewWatchChannel, rand.Float64), nil
}

// endpointsResolver follows the endpoints one watch after another, each
// made by newWatch (an endpoints manager's NewWatchChannel), and reports
// them to cc.
type endpointsResolver struct {
	cc       resolver.ClientConn
	newWatch func(context.Context) (endpoints.WatchChannel, error)
	rand     func() float64 // in [0, 1): the backoff's jitter
	cancel   context.CancelFunc
	done     chan struct{} // closed when run has returned

	// Owned by run's goroutine.
	last    []resolver.Address // the addresses last reported
	pending bool               // an error was reported since last
}

func startEndpointsResolver(cc resolver.ClientConn, newWatch func(context.Context) (endpoints.WatchChannel, error), rnd func() float64) *endpointsResolver {
	ctx, cancel := context.WithCancel(context.Background())
	r := &endpointsResolver{cc: cc, newWatch: newWatch, rand: rnd, cancel: cancel, done: make(chan struct{}), pending: true}
	go r.run(ctx)
	return r
}

// ResolveNow does nothing: the watch reports every change as it happens.
func (*endpointsResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops the watch and waits until the resolver's goroutine has
// returned; it reports nothing after Close.
func (r *endpointsResolver) Close() {
	r.cancel()
	<-r.done
}

// run makes watches until ctx ends, backing off after each failure.
func (r *endpointsResolver) run(ctx context.Context) {
	defer close(r.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		if failures > 0 {
			timer.Reset(r.backoff(failures))
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		start := time.Now()
		err := r.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.cc.ReportError(err)
			r.pending = true
		}
		if time.Since(start) >= watchBackoffMax {
			failures = 0
		}
		failures++
	}
}

// backoff returns the wait after n ≥ 1 failures in a row.
func (r *endpointsResolver) backoff(n int) time.Duration {
	d := watchBackoffBase
	for i := 1; i < n && d < watchBackoffMax; i++ {
		d *= 2
	}
	return time.Duration(float64(min(d, watchBackoffMax)) * (0.8 + 0.4*r.rand()))
}

// watch makes one watch and reports the endpoints it delivers until it
// breaks or ctx ends. It returns an error only when the watch could not be
// made.
func (r *endpointsResolver) watch(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	wch, err := r.startWatch(wctx)
	if err != nil {
		cancel()
		return fmt.Errorf("etcdmembership: read endpoints: %w", err)
	}
	defer func() {
		cancel()
		// The manager's goroutine may be blocked sending an update and
		// closes the channel once it has seen the cancellation: drain it,
		// so that it returns.
		for range wch {
		}
	}()
	view := make(map[string]endpoints.Endpoint)
	// The endpoints as read are in the channel before NewWatchChannel
	// returns, unless there are none: take them if there, and report.
	select {
	case ups, ok := <-wch:
		if !ok {
			return nil
		}
		apply(view, ups)
	default:
	}
	r.report(view)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ups, ok := <-wch:
			if !ok {
				return nil // the watch broke: the manager logged why
			}
			apply(view, ups)
			r.report(view)
		}
	}
}

// startWatch calls newWatch (which reads the endpoints, and the etcd
// client waits for etcd as long as ctx lasts) and reports an error to the
// ClientConn when it has not returned after readTimeout, while it goes on
// waiting.
func (r *endpointsResolver) startWatch(ctx context.Context) (endpoints.WatchChannel, error) {
	type result struct {
		wch endpoints.WatchChannel
		err error
	}
	res := make(chan result, 1)
	go func() {
		wch, err := r.newWatch(ctx)
		res <- result{wch, err}
	}()
	slow := time.NewTimer(readTimeout)
	defer slow.Stop()
	select {
	case x := <-res:
		return x.wch, x.err
	case <-slow.C:
		r.cc.ReportError(fmt.Errorf("etcdmembership: etcd has not answered in %v", readTimeout))
		r.pending = true
	}
	x := <-res // ctx ending makes newWatch return
	return x.wch, x.err
}

// apply folds a batch of updates into view, keyed by etcd key.
func apply(view map[string]endpoints.Endpoint, ups []*endpoints.Update) {
	for _, up := range ups {
		switch up.Op {
		case endpoints.Add:
			view[up.Key] = up.Endpoint
		case endpoints.Delete:
			delete(view, up.Key)
		}
	}
}

// report sends view to the ClientConn unless it is what was last sent.
func (r *endpointsResolver) report(view map[string]endpoints.Endpoint) {
	addrs := addresses(view)
	if !r.pending && slices.EqualFunc(addrs, r.last, resolver.Address.Equal) {
		return
	}
	eps := make([]resolver.Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{a}}
	}
	// An error (no addresses, say) is the ClientConn's to act on; the
	// watch reports the next change anyway.
	_ = r.cc.UpdateState(resolver.State{Addresses: addrs, Endpoints: eps})
	r.last, r.pending = addrs, false
}

// addresses returns one address per distinct Addr of view, in key order,
// each with its endpoint's zone.
func addresses(view map[string]endpoints.Endpoint) []resolver.Address {
	keys := make([]string, 0, len(view))
	for k := range view {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	addrs := make([]resolver.Address, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		ep := view[k]
		if ep.Addr == "" || seen[ep.Addr] {
			continue
		}
		seen[ep.Addr] = true
		a := resolver.Address{Addr: ep.Addr}
		if z := zoneOf(ep.Metadata); z != "" {
			a = pool.WithAddressZone(a, z)
		}
		addrs = append(addrs, a)
	}
	return addrs
}

// zoneOf reads the zone from an endpoint's Metadata: a Metadata (as
// registered in this process), or the map JSON decodes it to.
func zoneOf(md any) string {
	switch m := md.(type) {
	case Metadata:
		return m.Zone
	case *Metadata:
		if m != nil {
			return m.Zone
		}
	case map[string]any:
		z, _ := m["zone"].(string)
		return z
	case map[string]string:
		return m["zone"]
	}
	return ""
}
