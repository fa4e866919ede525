// Package pool is a gRPC client connection pool: a grpc.ClientConnInterface
// that spreads unary calls and streams over several connections to every
// address its target resolves to, and keeps that spread as backends come,
// go, slow down or fail.
//
// A Pool is used wherever a *grpc.ClientConn would be:
//
//	p, err := pool.New("dns:///greeter.prod.svc:50051",
//		pool.WithDialOptions(grpc.WithTransportCredentials(creds)))
//	if err != nil { ... }
//	defer p.Close()
//	client := pb.NewGreeterClient(p)
//
// Picking is lock-free: each call reads an immutable snapshot of the
// backends that can take calls, rebuilt and swapped atomically whenever a
// connection, an address, a breaker or a health status changes.
//
// # Failing fast
//
// When no backend can take a call, it fails at once with
// codes.Unavailable and a message that says why: no addresses resolved,
// all circuit breakers open, backends not serving, connections failing. A
// call made with grpc.WaitForReady(true) waits instead, until a
// connection is ready or its context ends. While the pool is starting
// (before its first resolution, while connections make their first
// attempt) calls wait, as they do on a new grpc.ClientConn.
//
// # Long-lived streams
//
// A stream stays on the connection it was opened on, so streams opened
// before a backend joined never reach it. Set WithMaxStreamAge and reopen
// streams that end with codes.Unavailable: the pool ends a stream past its
// age with that code and a message saying it was ended to rebalance, and
// the new stream is placed by the pool's policy, on the least-loaded
// backend with LeastActive. A caller whose stream carries a sequence (a
// subscription, a log tail) resumes from the last position it
// acknowledged:
//
//	for {
//		s, err := client.Subscribe(ctx, &pb.SubscribeRequest{From: last})
//		if err == nil {
//			for {
//				var ev *pb.Event
//				if ev, err = s.Recv(); err != nil {
//					break
//				}
//				handle(ev)
//				last = ev.Seq + 1
//			}
//		}
//		if status.Code(err) != codes.Unavailable {
//			return err // io.EOF, the caller's context, a real failure
//		}
//	}
//
// The same loop also rides through a backend going away. With
// WithMaxConnAge the pool also replaces connections, which moves calls
// onto backends added behind a single virtual IP; streams on a replaced
// connection keep running until they end (or WithDrainTimeout passes).
package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/chash"
	"github.com/grpcpool/grpcpool/internal/wrr"
	"github.com/grpcpool/grpcpool/retry"
)

// Pool is a pool of gRPC connections to the addresses of one target. It
// implements grpc.ClientConnInterface, so generated clients use it as they
// would a *grpc.ClientConn. A Pool is safe for concurrent use.
type Pool struct {
	target    string
	authority string
	o         options
	log       *slog.Logger
	dialOpts  []grpc.DialOption
	budget    *retry.Budget // nil without WithRetry

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the pool's goroutines

	goMu     sync.Mutex // guards goClosed and wg.Add; never held while calling out
	goClosed bool

	snap           atomic.Pointer[snapshot]
	rr             atomic.Uint32
	closed         atomic.Bool
	lastResolveNow atomic.Int64
	connIDs        atomic.Uint64

	resMu sync.Mutex // guards res
	res   resolver.Resolver

	mu       sync.Mutex // guards the fields below and backend and conn fields marked so
	closing  bool
	resolved bool  // the resolver has reported once
	resErr   error // last resolver error, cleared by an update
	backends map[string]*backend
	order    []*backend   // resolved backends in resolver order
	retired  []*backend   // removed backends still draining
	ring     *chash.Table // last hash ring built, reused while its backends are the same
	ringSig  string
	sched    *wrr.Schedule // last weighted schedule built, likewise
	schedW   []uint32
}

var _ grpc.ClientConnInterface = (*Pool)(nil)

// New returns a pool for target, which takes every form grpc.NewClient
// takes: "host:port" (DNS), "dns:///host:port", "dns://server:port/host:port",
// "passthrough:///addr", "unix:///path", and any registered resolver scheme
// or one given with WithResolvers.
//
// Like grpc.NewClient, New does no I/O that can block: resolution and
// connections happen in the background; use WaitForReady to wait for them.
// New returns an error, and leaves nothing running, for an empty or
// unparsable target, an unknown scheme, an invalid option, or dial options
// grpc.NewClient rejects.
func New(target string, opts ...Option) (*Pool, error) {
	o := defaultOptions()
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidOption, i)
		}
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	t, builder, err := parseTarget(target, o.resolvers)
	if err != nil {
		return nil, err
	}
	p := &Pool{
		target:    target,
		authority: authorityFor(t, builder),
		o:         o,
		log:       o.logger,
		backends:  make(map[string]*backend),
	}
	p.dialOpts = p.buildDialOptions()
	// Surface bad dial options now, not on the first address.
	probe, err := grpc.NewClient(connScheme+":///probe", append(p.dialOpts, grpc.WithResolvers(staticBuilder{}))...)
	if err != nil {
		return nil, fmt.Errorf("%w: dial options: %v", ErrInvalidOption, err)
	}
	_ = probe.Close()
	if o.retry != nil {
		p.budget = retry.NewBudget(o.retry.Budget)
	}
	p.rr.Store(rand.Uint32())
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.snap.Store(&snapshot{wait: true, changed: make(chan struct{})})

	res, err := builder.Build(t, &resolverCC{p: p}, resolver.BuildOptions{
		DisableServiceConfig: true,
		Authority:            p.authority,
	})
	if err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("%w: building %q resolver: %v", ErrInvalidTarget, builder.Scheme(), err)
	}
	p.resMu.Lock()
	p.res = res
	p.resMu.Unlock()
	if p.closed.Load() { // cannot happen today; keep Close's promise anyway
		res.Close()
	}
	p.startBackground()
	p.startSubset()
	p.log.Debug("grpcpool: pool created", "target", target, "size", o.size, "policy", o.policy.String())
	return p, nil
}

func (p *Pool) buildDialOptions() []grpc.DialOption {
	dos := []grpc.DialOption{grpc.WithIdleTimeout(0)}
	if p.o.keepalive != nil {
		dos = append(dos, p.o.keepalive.DialOption())
	}
	return append(dos, p.o.dialOpts...)
}

func (p *Pool) startBackground() {
	if p.o.resolveInterval > 0 {
		p.wg.Add(1)
		go p.resolveLoop()
	}
	if p.o.idleTimeout > 0 && p.o.maxSize > p.o.size {
		p.wg.Add(1)
		go p.idleLoop()
	}
}

// goAsync runs f in a goroutine the pool waits for at Close; nothing is
// started once Close has begun. It takes only goMu, so it is safe from any
// caller, with or without Pool.mu, breaker notifications included.
func (p *Pool) goAsync(f func()) {
	p.goMu.Lock()
	defer p.goMu.Unlock()
	if p.goClosed {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

// goLocked is goAsync for callers holding Pool.mu (the name keeps the
// convention that it runs under it).
func (p *Pool) goLocked(f func()) { p.goAsync(f) }

// Close closes every connection and stops the pool's goroutines. Calls in
// flight fail; later calls fail with codes.Canceled. Close is idempotent: a
// second call returns nil.
func (p *Pool) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	p.mu.Lock()
	p.closing = true
	var conns []*conn
	for _, b := range p.allBackendsLocked() {
		conns = append(conns, b.conns...)
		if b.probeAt != nil {
			b.probeAt.Stop()
		}
		for _, c := range b.conns {
			if c.ageTimer != nil {
				c.ageTimer.Stop()
			}
		}
	}
	p.publishLocked(&snapshot{err: status.Error(codes.Canceled, msgClosed)})
	p.mu.Unlock()

	p.cancel()
	p.resMu.Lock()
	if p.res != nil {
		p.res.Close()
	}
	p.resMu.Unlock()
	p.goMu.Lock()
	p.goClosed = true
	p.goMu.Unlock()

	var g errgroup.Group
	g.SetLimit(16)
	errs := make([]error, len(conns))
	for i, c := range conns {
		g.Go(func() error {
			if err := c.cc.Close(); err != nil && status.Code(err) != codes.Canceled {
				errs[i] = fmt.Errorf("grpcpool: closing connection to %s: %w", c.b.addr(), err)
			}
			return nil
		})
	}
	_ = g.Wait()
	p.wg.Wait()
	p.log.Debug("grpcpool: pool closed", "target", p.target)
	return errors.Join(errs...)
}

// allBackendsLocked returns the resolved backends, then the draining ones.
func (p *Pool) allBackendsLocked() []*backend {
	all := make([]*backend, 0, len(p.order)+len(p.retired))
	all = append(all, p.order...)
	return append(all, p.retired...)
}

// WaitForReady blocks until at least one backend connection can take calls,
// or ctx ends (it returns ctx's error), or the pool is closed (it returns a
// codes.Canceled status).
func (p *Pool) WaitForReady(ctx context.Context) error {
	for {
		s := p.snap.Load()
		if len(s.backends) > 0 {
			return nil
		}
		if p.closed.Load() {
			return status.Error(codes.Canceled, msgClosed)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.changed:
		}
	}
}

// Target returns the target the pool was created with.
func (p *Pool) Target() string { return p.target }

// addBackendLocked creates a backend with its floor of connections.
func (p *Pool) addBackendLocked(g group) *backend {
	b := &backend{key: g.key, addrs: g.addrs, weight: weightOf(g.addrs[0])}
	b.brkState.Store(int32(breaker.StateClosed))
	if p.o.breaker != nil {
		brk, err := breaker.New(g.key, *p.o.breaker, func(_ string, from, to breaker.State) {
			p.breakerChanged(b, from, to)
		})
		if err != nil { // validated in New; keep the backend usable anyway
			p.log.Error("grpcpool: breaker", "addr", g.key, "err", err)
		} else {
			b.brk = brk
		}
	}
	p.backends[g.key] = b
	for range p.o.size {
		p.addConnLocked(b)
	}
	p.log.Debug("grpcpool: backend added", "addr", b.addr(), "conns", p.o.size)
	return b
}

// removeBackendLocked retires all connections of a backend that is no
// longer resolved.
func (p *Pool) removeBackendLocked(b *backend) {
	delete(p.backends, b.key)
	b.removed = true
	if b.probeAt != nil {
		b.probeAt.Stop()
	}
	p.retired = append(p.retired, b)
	for _, c := range b.conns {
		p.retireLocked(c, "address removed")
	}
	p.log.Debug("grpcpool: backend removed", "addr", b.addr(), "draining", len(b.conns))
}

// addConnLocked opens one more connection to b. It is not pickable until
// it is READY.
func (p *Pool) addConnLocked(b *backend) *conn {
	dos := append(p.dialOpts[:len(p.dialOpts):len(p.dialOpts)],
		grpc.WithResolvers(staticBuilder{addrs: b.addrs, authority: p.authority}))
	cc, err := grpc.NewClient(connScheme+":///"+b.addr(), dos...)
	if err != nil {
		p.log.Error("grpcpool: cannot create connection", "addr", b.addr(), "err", err)
		return nil
	}
	c := &conn{
		b:       b,
		id:      p.connIDs.Add(1),
		cc:      cc,
		created: time.Now(),
		ready:   make(chan struct{}),
		drained: make(chan struct{}),
	}
	c.state.Store(int32(connectivity.Idle))
	c.limit.Store(p.limitFor(b))
	if p.o.healthService != nil {
		c.unhealthy.Store(true) // until its server says it is serving
	}
	c.idleSince = c.created
	b.conns = append(b.conns, c)
	cc.Connect()
	p.goLocked(func() { p.watch(c) })
	if p.o.healthService != nil {
		p.goLocked(func() { p.watchHealth(c) })
	}
	p.scheduleAgeLocked(c)
	return c
}

// watch follows a connection's state, keeps it connected, and rebuilds the
// snapshot when whether it can take calls changes.
func (p *Pool) watch(c *conn) {
	s := c.cc.GetState()
	for {
		prev := connectivity.State(c.state.Swap(int32(s)))
		settle := false
		switch s {
		case connectivity.Ready:
			c.markReady()
			// With health checking, the first health report settles it.
			settle = p.o.healthService == nil && !c.settled.Swap(true)
		case connectivity.TransientFailure:
			settle = !c.settled.Swap(true)
			p.resolveSoon()
		case connectivity.Idle:
			// The server went away or sent GOAWAY: a pool keeps its
			// connections warm, so reconnect now rather than on the next call.
			if !c.draining.Load() {
				c.cc.Connect()
			}
		case connectivity.Shutdown:
			return
		}
		if prev == connectivity.Ready && s != connectivity.Ready {
			c.leftReady(p.o.healthService != nil)
		}
		if settle || (prev == connectivity.Ready) != (s == connectivity.Ready) {
			p.rebuild()
		}
		if !c.cc.WaitForStateChange(p.ctx, s) {
			return
		}
		s = c.cc.GetState()
	}
}
