package lb

import (
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/pool"
)

// gen is one core and the SubConns it made; it is the core's Seam. The
// policy makes a new gen when its config changes.
type gen struct {
	b      *lbBalancer
	s      settings
	k      *core.Core          // set once, under b.mu, right after core.New
	growFn func(*core.Backend) // g.grow, made once so picks do not allocate it

	growArmed atomic.Bool // a growWait timer is pending, or being armed

	// Guarded by b.mu.
	resolveStop func() bool
	growStop    func() bool // the pending growWait timer; nil when none
	landed      uint64      // the growths landed (core.Picker.GrowthsLanded) when that timer was armed
	growSeq     uint64      // counts the growWait timers armed: a stale one does nothing
	zoneKey     string      // the clients per zone the core has (settings.zoneKey)
	overflow    bool        // the last picker published overflows calls that would wait for a growth
}

var _ core.Seam = (*gen)(nil)

// subConn is the policy's side of one connection: the core's Conn and the
// SubConn behind it.
type subConn struct {
	g  *gen
	c  *core.Conn
	sc balancer.SubConn // set in Dial before Connect; nil if NewSubConn failed
}

func subOf(c *core.Conn) *subConn { return c.Handle.(*subConn) }

func (g *gen) coreConfig() core.Config {
	s := g.s
	cfg := core.Config{
		Target:       g.b.target,
		Size:         s.size,
		MaxSize:      s.maxSize,
		MaxStreams:   int64(s.maxStreams),
		MaxConnAge:   s.maxConnAge,
		DrainTimeout: s.drainTimeout,
		// Health is always followed: without a healthCheckConfig grpc
		// reports every READY SubConn as serving at once.
		HealthCheck:   true,
		HealthTimeout: pool.DefaultHealthTimeout,
		Policy:        s.policy,
		Zone:          s.zone,
		SlowStart:     s.slowStart,
		Rand:          g.b.rand,
		Log:           logger,
	}
	cfg.ZoneMinBackends = s.zoneMin
	if s.maxStreams > 0 {
		// Only connections added past the floor for full ones are shrunk.
		cfg.IdleTimeout = s.idleTimeout
	}
	if s.maxEjectPercent < 100 {
		cfg.MaxEjectPercent, cfg.PanicPercent = s.maxEjectPercent, core.DefaultPanicPercent
	}
	if s.breaker != nil {
		set := s.breaker.Settings()
		cfg.NewBreaker = func(bk *core.Backend) *breaker.Breaker {
			brk, err := breaker.New(bk.Key, set, func(_ string, from, to breaker.State) {
				bk.StoreBreakerState(to)
				logger.Info("grpcpool: circuit breaker", "target", g.b.target, "addr", bk.Addr(), "from", from.String(), "to", to.String())
				g.b.q.Push(func(now time.Time) { g.k.BreakerChanged(now, bk) })
			})
			if err != nil { // validated by ParseConfig
				return nil
			}
			return brk
		}
	}
	return cfg
}

// Dial creates c's SubConn, with every address of its backend, and
// connects it.
func (g *gen) Dial(c *core.Conn) {
	sub := &subConn{g: g, c: c}
	c.Handle = sub
	sc, err := g.b.cc.NewSubConn(c.Backend.Addrs, balancer.NewSubConnOptions{StateListener: sub.stateChanged})
	if err != nil {
		err = fmt.Errorf("grpcpool: cannot create a SubConn for %s: %w", c.Backend.Addr(), err)
		g.b.q.Push(func(now time.Time) { g.k.ConnState(now, c, connectivity.TransientFailure, err) })
		return
	}
	sub.sc = sc
	sc.Connect()
}

func (g *gen) Connect(c *core.Conn) {
	if sc := subOf(c).sc; sc != nil {
		sc.Connect()
	}
}

// Close shuts c's SubConn down; the calls it carries still finish.
func (g *gen) Close(c *core.Conn) {
	if sc := subOf(c).sc; sc != nil {
		sc.Shutdown()
	}
}

// Publish hands grpc a picker over p, with the state it implies: READY
// while a backend can take calls, CONNECTING while calls wait (the policy
// is starting), TRANSIENT_FAILURE when they fail.
func (g *gen) Publish(p *core.Picker) { g.publishLocked(p, false) }

func (g *gen) publishLocked(p *core.Picker, overflow bool) {
	b := g.b
	if b.closed || b.cur != g {
		return // grpc must not hear from a closed policy, or of a replaced core
	}
	st := connectivity.TransientFailure
	switch {
	case p.Ready():
		st = connectivity.Ready
	case p.Wait():
		st = connectivity.Connecting
	}
	g.overflow = overflow
	if g.growStop != nil && (p.GrowthsLanded() != g.landed || !g.growingLocked()) {
		// A growth landed (the calls still waiting wait anew for the
		// next), or none is under way (nothing waits).
		g.stopGrowWaitLocked()
	}
	b.cc.UpdateState(balancer.State{ConnectivityState: st, Picker: &picker{g: g, p: p, overflow: overflow}})
}

// republish publishes the core's picker again, as it was last published,
// unless it is no longer only (nil: whichever it is): grpc then picks
// again the calls that wait for a new picker. It is for a pick that may
// now succeed although nothing the core follows changed.
func (g *gen) republish(only *core.Picker) {
	g.b.q.Push(func(time.Time) {
		if p := g.k.Picker(); !g.k.Closed() && (only == nil || p == only) {
			g.publishLocked(p, g.overflow)
		}
	})
}

func (g *gen) ResolveNow() { g.b.cc.ResolveNow(resolver.ResolveNowOptions{}) }

func (g *gen) After(d time.Duration, t core.Timer) func() bool {
	return g.b.after(g.b.q, d, t.Kind, func(now time.Time) { g.k.Fire(now, t) })
}

// closeLocked stops g's core and timers and shuts its SubConns down.
func (g *gen) closeLocked() {
	for _, stop := range []func() bool{g.resolveStop, g.growStop} {
		if stop != nil {
			stop()
		}
	}
	for _, c := range g.k.Close(g.b.now(), errClosed) {
		g.Close(c)
	}
}

// scheduleResolveLocked asks the resolver to resolve again after the
// resolve interval (±10 %), and again after each time.
func (g *gen) scheduleResolveLocked() {
	if g.s.resolveInterval <= 0 {
		return
	}
	g.resolveStop = g.b.after(g.b.q, core.Jitter(g.s.resolveInterval), resolveTimer, func(time.Time) {
		if g.k.Closed() {
			return
		}
		g.ResolveNow()
		g.scheduleResolveLocked()
	})
}

// stateChanged is c's SubConn's StateListener: grpc calls it on its own
// goroutine, one call at a time with the policy's other methods.
func (s *subConn) stateChanged(st balancer.SubConnState) {
	b := s.g.b
	b.mu.Lock()
	defer b.mu.Unlock()
	k := s.g.k
	if k.Closed() || st.ConnectivityState == connectivity.Shutdown {
		return
	}
	k.ConnState(b.now(), s.c, st.ConnectivityState, st.ConnectionError)
	if st.ConnectivityState == connectivity.Ready && s.c.State().Live() {
		// grpc's health producer when the service config has a
		// healthCheckConfig, a single "serving" otherwise.
		s.sc.RegisterHealthListener(s.healthChanged)
	}
	k.Flush()
}

// healthChanged hears the SubConn's health while it is READY: READY is
// serving, TRANSIENT_FAILURE is not; CONNECTING (the health stream is
// starting again) changes nothing.
func (s *subConn) healthChanged(st balancer.SubConnState) {
	b := s.g.b
	b.mu.Lock()
	defer b.mu.Unlock()
	k := s.g.k
	if k.Closed() {
		return
	}
	switch st.ConnectivityState {
	case connectivity.Ready:
		k.Health(b.now(), s.c, true, nil)
	case connectivity.TransientFailure:
		k.Health(b.now(), s.c, false, st.ConnectionError)
	default:
		return
	}
	k.Flush()
}
