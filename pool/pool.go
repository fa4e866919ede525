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
	"github.com/grpcpool/grpcpool/internal/telemetry"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/retry"
)

// Pool is a pool of gRPC connections to the addresses of one target. It
// implements grpc.ClientConnInterface, so generated clients use it as they
// would a *grpc.ClientConn. A Pool is safe for concurrent use.
type Pool struct {
	caller    caller              // runs Invoke and NewStream
	rec       *telemetry.Recorder // nil-safe
	target    string
	authority string
	o         options
	log       *slog.Logger
	dialOpts  []grpc.DialOption
	schemes   []string // of the target, for its connections (connSchemes)

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the pool's goroutines

	goMu     sync.Mutex // guards goClosed and wg.Add; never held while calling out
	goClosed bool

	picker atomic.Pointer[core.Picker] // what calls pick from
	closed atomic.Bool
	growFn func(*core.Backend)

	resolution resolution // asks the resolver for resolutions

	events events

	mu   sync.Mutex // guards core and the pconn fields marked so
	core *core.Core
}

var _ grpc.ClientConnInterface = (*Pool)(nil)

// New returns a pool for target, which takes every form grpc.NewClient
// takes: "host:port" (DNS), "dns:///host:port", "dns://server:port/host:port",
// "passthrough:///addr", "unix:///path", and any registered resolver scheme
// or one given with WithResolvers. A DNS target without a port uses port
// 443, as grpc.NewClient does.
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
			o.fail("option %d is nil", i)
			continue
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
	}
	if p.rec, err = o.recorder(target); err != nil {
		return nil, err
	}
	p.caller.p = p
	p.caller.unary = chainUnary(o.unaryInts, p.caller.invoke)
	p.caller.streamer = chainStream(o.streamInts, p.caller.stream)
	p.dialOpts = p.buildDialOptions()
	// Surface bad dial options now, not on the first address.
	p.schemes = connSchemes(t)
	probe, err := grpc.NewClient(target, p.connDialOptions(staticBuilder{authority: p.authority})...)
	if err != nil {
		return nil, fmt.Errorf("%w: dial options: %v", ErrInvalidOption, err)
	}
	_ = probe.Close()
	if o.methods != nil {
		p.caller.budget = retry.NewBudget(o.methods.Budget())
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.events = events{wake: make(chan struct{}, 1), poolMu: &p.mu, flush: func() { p.core.Flush() }}
	p.growFn = func(b *core.Backend) {
		p.events.push(func(now time.Time) { p.core.Grow(now, b) })
	}
	p.mu.Lock()
	p.core = core.New(p.coreConfig(), seam{p})
	p.mu.Unlock()
	if err := p.rec.RegisterGauges(func(g telemetry.GaugeObserver) {
		p.mu.Lock()
		defer p.mu.Unlock()
		telemetry.ObserveBackends(g, p.core.Backends(), int64(p.o.maxStreams), p.o.breaker != nil)
	}); err != nil {
		return nil, err
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.events.run(p.ctx.Done())
	}()

	res, err := builder.Build(t, &resolverCC{p: p}, resolver.BuildOptions{
		DisableServiceConfig: true,
		Authority:            p.authority,
	})
	if err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("%w: building %q resolver: %v", ErrInvalidTarget, builder.Scheme(), err)
	}
	p.resolution.set(res)
	if p.o.resolveInterval > 0 {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.resolution.loop(p.o.resolveInterval, p.ctx.Done())
		}()
	}
	p.startSubset()
	p.startZones()
	p.log.Debug("grpcpool: pool created", "target", target, "size", o.size, "policy", o.policy.String())
	return p, nil
}

func (p *Pool) coreConfig() core.Config {
	o := p.o
	cfg := core.Config{
		Target:        p.target,
		Size:          o.size,
		MaxSize:       o.maxSize,
		MaxStreams:    int64(o.maxStreams),
		LearnLimits:   o.learnStreamLimit > 0,
		IdleTimeout:   o.idleTimeout,
		MaxConnAge:    o.maxConnAge,
		DrainTimeout:  o.drainTimeout,
		HealthCheck:   o.healthService != nil,
		HealthTimeout: DefaultHealthTimeout,
		Policy:        core.Policy(o.policy),
		SlowStart:     o.slowStart,
		Log:           p.log,
		Observer:      telemetry.CoreObserver{R: p.rec},
	}
	o.zones.config(&cfg)
	if o.maxEjectPercent < 100 {
		cfg.MaxEjectPercent, cfg.PanicPercent = o.maxEjectPercent, core.DefaultPanicPercent
	}
	if o.breaker != nil {
		cfg.NewBreaker = func(b *core.Backend) *breaker.Breaker {
			brk, err := breaker.New(b.Key, *o.breaker, func(_ string, from, to breaker.State) {
				b.StoreBreakerState(to)
				p.log.Info("grpcpool: circuit breaker", "target", p.target, "addr", b.Addr(), "from", from.String(), "to", to.String())
				if !b.Gone() || b.Load() > 0 { // a finished backend's label is released
					p.rec.BreakerTransition(b.Addr(), to)
				}
				p.events.push(func(now time.Time) { p.core.BreakerChanged(now, b) })
			})
			if err != nil { // validated in New; keep the backend usable anyway
				p.log.Error("grpcpool: breaker", "target", p.target, "addr", b.Key, "err", err)
				return nil
			}
			return brk
		}
	}
	return cfg
}

func (p *Pool) buildDialOptions() []grpc.DialOption {
	dos := []grpc.DialOption{grpc.WithIdleTimeout(0)}
	if p.o.keepalive != nil {
		dos = append(dos, p.o.keepalive.DialOption())
	}
	if len(p.o.retries) > 0 {
		// Only a pool with retry policies asks whether a status came
		// back: gRPC then makes its stats events, some 15 allocations an
		// RPC.
		dos = append(dos, grpc.WithStatsHandler(statusSeen{}))
	}
	dos = append(dos, p.o.dialOpts...)
	if p.o.stallLearning() {
		// Last, so innermost: it sees the stream as gRPC returns it.
		dos = append(dos, grpc.WithChainStreamInterceptor(markAdmitted))
	}
	return dos
}

// goAsync runs f in a goroutine the pool waits for at Close; nothing is
// started once Close has begun. It takes only goMu, so it is safe from any
// caller, with or without Pool.mu.
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

// Close closes every connection and stops the pool's goroutines. Calls in
// flight fail; later calls fail with codes.Canceled. Close is idempotent: a
// second call returns nil.
func (p *Pool) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	p.mu.Lock()
	conns := p.core.Close(time.Now(), status.Error(codes.Canceled, msgClosed))
	for _, c := range conns {
		if pc := handle(c); pc.healthCancel != nil {
			pc.healthCancel()
			pc.healthCancel = nil
		}
		handle(c).stopWarmup()
	}
	p.mu.Unlock()
	_ = p.rec.Close() // not under p.mu: a collection may be waiting for it

	p.cancel()
	p.resolution.close()
	p.goMu.Lock()
	p.goClosed = true
	p.goMu.Unlock()

	var g errgroup.Group
	g.SetLimit(16)
	errs := make([]error, len(conns))
	for i, c := range conns {
		cc := handle(c).cc
		if cc == nil {
			continue
		}
		g.Go(func() error {
			if err := cc.Close(); err != nil && status.Code(err) != codes.Canceled {
				errs[i] = fmt.Errorf("grpcpool: closing connection to %s: %w", c.Backend.Addr(), err)
			}
			return nil
		})
	}
	_ = g.Wait()
	p.wg.Wait()
	p.log.Debug("grpcpool: pool closed", "target", p.target)
	return errors.Join(errs...)
}

// WaitForReady blocks until at least one backend connection can take calls,
// or ctx ends (it returns ctx's error), or the pool is closed (it returns a
// codes.Canceled status).
func (p *Pool) WaitForReady(ctx context.Context) error {
	for {
		s := p.picker.Load()
		if s.Ready() {
			return nil
		}
		if p.closed.Load() {
			return status.Error(codes.Canceled, msgClosed)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.Changed():
		}
	}
}

// Target returns the target the pool was created with.
func (p *Pool) Target() string { return p.target }
