package lb

import (
	"encoding/json"
	"sync"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/health" // grpc's health producer: healthCheckConfig works without the caller importing it
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/internal/addrs"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/eventq"
	"github.com/grpcpool/grpcpool/pool"
)

func init() { balancer.Register(builder{name: Name}) }

// errClosed is what the core's last picker says; grpc no longer picks from
// a closed policy's pickers, so callers never see it.
var errClosed = status.Error(codes.Canceled, "grpcpool: load-balancing policy closed")

// builder builds the policy. Its clock and timers are real; tests build
// policies of other names whose timers they fire themselves.
type builder struct {
	name  string
	after afterFunc        // nil: real timers
	now   func() time.Time // nil: time.Now
	rand  func() uint64    // nil: the core's default
}

// afterFunc applies f on q after d and returns a function that cancels it.
// kind says what the timer is for (a core.TimerKind or one of the
// policy's own), so a test's fake can fire the one it means.
type afterFunc func(q *eventq.Queue, d time.Duration, kind core.TimerKind, f func(now time.Time)) (stop func() bool)

// The policy's own timers, beside the core's.
const (
	resolveTimer  core.TimerKind = 100 + iota // periodic re-resolution
	growWaitTimer                             // a pick waited growWait for a growth: overflow
)

func realAfter(q *eventq.Queue, d time.Duration, _ core.TimerKind, f func(time.Time)) func() bool {
	return q.After(d, f)
}

func (bb builder) Name() string { return bb.name }

// lbConfig is a parsed config, as grpc hands it back to the balancer.
// Parent policies (xDS's priority and cluster_impl) marshal their
// children's parsed configs to JSON and parse them again: it marshals as
// the Config it was parsed from.
type lbConfig struct {
	serviceconfig.LoadBalancingConfig
	c Config
	s settings
}

func (l *lbConfig) MarshalJSON() ([]byte, error) { return l.c.MarshalJSON() }

func (bb builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	c, err := ParseConfig(js)
	if err != nil {
		return nil, err
	}
	return &lbConfig{c: c, s: c.settings()}, nil
}

func (bb builder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	b := &lbBalancer{cc: cc, target: opts.Target.String(), after: bb.after, now: bb.now, rand: bb.rand, stop: make(chan struct{})}
	if b.after == nil {
		b.after = realAfter
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.q = eventq.New(&b.mu, b.flushLocked, b.now)
	b.wg.Go(func() { b.q.Run(b.stop) })
	return b
}

// lbBalancer is one instance of the policy: one grpc.ClientConn's (or, under
// xDS, one cluster's). grpc calls its Balancer methods one at a time, on
// its own goroutine; they apply what they report to the core under mu at
// once. Everything that reaches the core from elsewhere — a timer, a pick
// asking for growth, a call ending on a retired connection, a breaker
// changing state — goes through q and is applied by the policy's one event
// goroutine, under mu too. Nothing runs per SubConn.
type lbBalancer struct {
	cc     balancer.ClientConn
	target string
	after  afterFunc
	now    func() time.Time
	rand   func() uint64
	q      *eventq.Queue
	stop   chan struct{}
	wg     sync.WaitGroup // the event goroutine

	mu     sync.Mutex // guards cur, closed and the core of cur (and its gen's fields marked so)
	cur    *gen       // the core in use; nil until the first update
	closed bool
}

func (b *lbBalancer) flushLocked() {
	if !b.closed && b.cur != nil {
		b.cur.k.Flush()
	}
}

// UpdateClientConnState applies a resolver update and the policy's config.
// A config that differs from the one in use replaces the core: new
// connections are made, and the old ones close once their calls end. A
// change of zoneClients alone moves the zone split of the core in use.
func (b *lbBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	set := Config{}.settings()
	if c, ok := s.BalancerConfig.(*lbConfig); ok {
		set = c.s
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	if b.cur == nil || !b.cur.s.equal(set) {
		b.switchLocked(set)
	}
	b.zoneClientsLocked(set)
	gs := addrs.Groups(s.ResolverState, pool.AddressWeight)
	if c := b.cur.s.cidr; c != nil {
		c.Fill(gs)
	}
	b.cur.k.Resolved(b.now(), gs)
	b.cur.k.Flush()
	if len(gs) == 0 {
		// grpc asks the resolver again, with backoff; calls fail with
		// "no addresses resolved" meanwhile.
		return balancer.ErrBadResolverState
	}
	return nil
}

// ResolverError records the resolver's error: calls that find nothing to
// pick say it.
func (b *lbBalancer) ResolverError(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if b.cur == nil {
		b.switchLocked(Config{}.settings())
	}
	b.cur.k.ResolverError(b.now(), err)
	b.cur.k.Flush()
}

// UpdateSubConnState is not used: every SubConn has a StateListener.
func (b *lbBalancer) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}

// ExitIdle does nothing: the policy keeps its connections connected.
func (b *lbBalancer) ExitIdle() {}

// Close shuts every SubConn down (their calls in flight finish: a SubConn's
// shutdown is graceful) and stops the event goroutine.
func (b *lbBalancer) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	if b.cur != nil {
		b.cur.closeLocked()
	}
	b.mu.Unlock()
	close(b.stop)
	b.wg.Wait()
}

// switchLocked puts a new core with set in use and closes the old one.
func (b *lbBalancer) switchLocked(set settings) {
	old := b.cur
	g := &gen{b: b, s: set}
	g.growFn = g.grow
	b.cur = g
	g.k = core.New(g.coreConfig(), g)
	if old != nil {
		old.closeLocked()
	}
	g.scheduleResolveLocked()
}
