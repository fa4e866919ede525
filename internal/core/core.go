// Package core is the pool's decision core: it owns backends and their
// connections, gives each connection one effective state, and makes every
// lifecycle decision — add, retire, recycle, grow past a stream limit,
// shrink idle connections, drain, health, breaker, learned limits — without
// goroutines, without a *grpc.ClientConn, and with time passed in. It acts
// on real connections only through a Seam, which the pool implements over
// grpc.ClientConn and tests implement with a fake.
//
// A Core is not safe for concurrent use: its caller serialises every
// method call (the pool holds one mutex around them). The Pickers it
// publishes are immutable and safe for concurrent use; they read only the
// Hot counters of connections and backends.
package core

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/breaker"
)

// Policy chooses a backend and a connection for each call.
type Policy int

// The policies; the pool's exported Policy values map onto these.
const (
	RoundRobin Policy = iota
	LeastActive
	ConsistentHash
	PeakEWMA
)

// Seam is how the Core acts on real connections. Its methods are called
// with the Core's caller's serialisation held, so they must not call back
// into the Core synchronously; events they cause are reported later.
type Seam interface {
	// Dial starts c's connection. Its connectivity states are reported
	// with Core.ConnState, its health reports with Core.Health.
	Dial(c *Conn)
	// Connect asks c's idle connection to connect again.
	Connect(c *Conn)
	// Close closes c's connection. Nothing is reported for c after it.
	Close(c *Conn)
	// Publish makes p the picker calls read.
	Publish(p *Picker)
	// ResolveNow asks the resolver for a new resolution.
	ResolveNow()
	// After schedules Core.Fire(t) after d and returns a function that
	// cancels it (reporting whether it was still pending).
	After(d time.Duration, t Timer) func() bool
}

// TimerKind names what a Timer is for.
type TimerKind uint8

// The timers the Core schedules.
const (
	AgeTimer     TimerKind = iota // a connection reached its max age: recycle it
	ReplaceTimer                  // a recycle's replacement did not become ready in time
	DrainTimer                    // a draining connection's drain timeout passed
	HealthTimer                   // a READY connection sent no first health report in time
	ProbeTimer                    // an open breaker's timeout passed: offer it half-open
	LimitTimer                    // a learned stream limit expired
	GrowTimer                     // a failed growth's backoff ended
	IdleTimer                     // the periodic idle shrink
	RampTimer                     // a backend's slow start window ended
)

// A Timer is a scheduled event; Core.Fire handles it.
type Timer struct {
	Kind    TimerKind
	Conn    *Conn
	Backend *Backend
}

// Group is one backend as the resolver reported it.
type Group struct {
	Key    string
	Addrs  []resolver.Address
	Weight uint32
}

// Config is what the Core decides by. Durations of 0 turn their feature
// off unless said otherwise.
type Config struct {
	Target         string
	Size           int           // connections kept per backend (the floor), ≥ 1
	MaxSize        int           // most connections per backend when they are full, ≥ Size
	MaxStreams     int64         // configured stream limit per connection; 0: learn it
	LearnLimits    bool          // learn stream limits from stalls (with MaxStreams 0)
	LimitTTL       time.Duration // how long a learned limit holds before it is learned again
	IdleTimeout    time.Duration // connections above the floor idle this long are retired
	MaxConnAge     time.Duration // connections are recycled after this (jittered)
	DrainTimeout   time.Duration // a draining connection is closed after this; 0: never cut
	ReplaceTimeout time.Duration // how long a recycle waits for its replacement
	HealthCheck    bool          // connections need a SERVING report to take calls
	HealthTimeout  time.Duration // a READY connection's first health report must come within it
	GrowBackoff    time.Duration // pause after a failed growth (doubling, up to 30 × it)
	Policy         Policy

	// SlowStart ramps the share of a backend that becomes ready after
	// the others over this window (see slowstart.go); 0: off.
	SlowStart time.Duration
	// SlowStartAggression shapes the ramp (Envoy's aggression): the
	// share grows as (elapsed/window)^(1/aggression). 0 is taken as 1
	// (linear).
	SlowStartAggression float64
	// SlowStartFloor is the least fraction of its full share a ramping
	// backend gets (0 is taken as DefaultSlowStartFloor).
	SlowStartFloor float64
	// MaxEjectPercent caps the backends open breakers take out of the
	// pickers, in per cent of the resolved ones, at least one; the
	// others with open breakers take calls past their breakers. 0: no
	// cap (every open breaker takes its backend out).
	MaxEjectPercent int
	// PanicPercent: with at least this per cent of the resolved backends'
	// breakers open, none is taken out. 0: never.
	PanicPercent int
	// EWMADecay is PeakEWMA's decay time constant (0: DefaultEWMADecay).
	EWMADecay time.Duration
	// FailurePenalty is the latency PeakEWMA records for a failed call
	// whose server sent no grpc-retry-pushback-ms (0:
	// DefaultFailurePenalty).
	FailurePenalty time.Duration

	// NewBreaker returns b's breaker, or nil. Called once per backend.
	NewBreaker func(b *Backend) *breaker.Breaker
	// Jitter returns a jittered duration (default: ±10 %).
	Jitter func(time.Duration) time.Duration
	// Rand is the pickers' randomness (default math/rand/v2.Uint64); tests
	// fix it.
	Rand func() uint64
	// Log receives decisions; nil discards them.
	Log *slog.Logger
	// Observer hears the decisions as they are made, for metrics; nil
	// hears nothing.
	Observer Observer
}

// Observer hears the Core's decisions. Its methods are called with the
// Core's caller's serialisation held, so they must be quick and must not
// call back into the Core.
type Observer interface {
	// ConnState: c's effective state changed.
	ConnState(c *Conn, from, to State)
	// Retired: c was retired, for reason (max_age, idle, removed,
	// replacement_failed, replacement_not_ready, growth_failed, …).
	Retired(c *Conn, reason string)
	// LimitLearned: b's stream limit per connection is now limit (0: it
	// expired).
	LimitLearned(b *Backend, limit int64)
}

type nopObserver struct{}

func (nopObserver) ConnState(*Conn, State, State) {}
func (nopObserver) Retired(*Conn, string)         {}
func (nopObserver) LimitLearned(*Backend, int64)  {}

// Core is the decision core. See the package documentation.
type Core struct {
	cfg      Config
	seam     Seam
	log      *slog.Logger
	backends map[string]*Backend
	order    []*Backend // resolved backends, in resolver order
	retired  []*Backend // removed backends still draining
	resolved bool       // the resolver has reported once
	resErr   error
	closed   bool
	nextID   uint64
	picker   *Picker
	idle     func() bool
	at       time.Time // the time of the event being handled
	stale    bool      // the last picker published is out of date
	ringGen  uint64    // changes when the resolved backends or weights do
	clock    *clock
	least    *leastShared // LeastActive's load floor; nil for other policies
	ew       *ewmaCfg     // PeakEWMA's configuration; nil for other policies
	ctr      *counters    // the pickers' counters
}

// New returns a Core that acts through seam. It publishes a first picker
// that makes calls wait for the first resolution.
func New(cfg Config, seam Seam) *Core {
	if cfg.Size < 1 {
		cfg.Size = 1
	}
	cfg.MaxSize = max(cfg.MaxSize, cfg.Size)
	if cfg.Jitter == nil {
		cfg.Jitter = Jitter
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Uint64
	}
	if cfg.ReplaceTimeout <= 0 {
		cfg.ReplaceTimeout = 30 * time.Second
	}
	if cfg.GrowBackoff <= 0 {
		cfg.GrowBackoff = time.Second
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &Core{cfg: cfg, seam: seam, log: log, backends: make(map[string]*Backend), clock: newClock(), ctr: newCounters(cfg.Rand())}
	k.initPolicy()
	if cfg.IdleTimeout > 0 && cfg.MaxSize > cfg.Size {
		k.idle = seam.After(k.idleEvery(), Timer{Kind: IdleTimer})
	}
	k.publish()
	k.Flush()
	return k
}

// Jitter returns d ±10 %.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// touch marks b's entry in the pickers out of date.
func (k *Core) touch(b *Backend) {
	b.dirty = true
	k.stale = true
}

func (k *Core) idleEvery() time.Duration { return max(k.cfg.IdleTimeout/4, 10*time.Millisecond) }

// Picker returns the last picker published (call Flush first for one
// that reflects the last event).
func (k *Core) Picker() *Picker { return k.picker }

// Backends returns the resolved backends in resolver order, then the
// removed ones still draining. The slice is new; the backends belong to the
// Core.
func (k *Core) Backends() []*Backend {
	all := make([]*Backend, 0, len(k.order)+len(k.retired))
	all = append(all, k.order...)
	return append(all, k.retired...)
}

// Closed reports whether Close was called.
func (k *Core) Closed() bool { return k.closed }

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
	b := &Backend{Key: g.Key, Addrs: g.Addrs, weight: max(g.Weight, 1), dirty: true}
	b.brkState.Store(int32(breaker.StateClosed))
	b.least, b.ewma.cfg = k.least, k.ew
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

func (k *Core) limitFor(b *Backend) int64 {
	if b.limit > 0 {
		return b.limit
	}
	return k.cfg.MaxStreams
}

// ConnState records a connectivity state c's connection reported, with the
// error of a failed attempt.
func (k *Core) ConnState(now time.Time, c *Conn, s connectivity.State, err error) {
	k.at = now
	if k.closed || c.state == Closed || s == connectivity.Shutdown {
		return
	}
	prev := c.transport
	c.transport = s
	switch s {
	case connectivity.Ready:
		c.lastErr = nil
		c.reported = false
		if !k.cfg.HealthCheck {
			c.settled = true
		} else if k.cfg.HealthTimeout > 0 && c.state != Draining {
			c.healthTimer.stop()
			c.healthTimer = k.seam.After(k.cfg.HealthTimeout, Timer{Kind: HealthTimer, Conn: c})
		}
	case connectivity.TransientFailure:
		c.settled = true
		if err != nil {
			c.lastErr = err
		}
		k.seam.ResolveNow()
	case connectivity.Idle:
		// The server went away or sent GOAWAY: a pool keeps its
		// connections warm, so it reconnects now, not on the next call.
		if c.state != Draining {
			k.seam.Connect(c)
		}
	}
	if prev == connectivity.Ready && s != connectivity.Ready {
		c.healthTimer.stop()
	}
	if c.state == Draining {
		return
	}
	k.update(now, c)
}

// Health records a health report for c: serving or not. Reports for a
// connection that is not READY are stale and ignored.
func (k *Core) Health(now time.Time, c *Conn, serving bool, err error) {
	k.at = now
	if k.closed || !k.cfg.HealthCheck || !c.state.Live() || c.transport != connectivity.Ready {
		return
	}
	c.healthTimer.stop()
	c.serving, c.reported, c.settled = serving, true, true
	if !serving {
		c.lastErr = err
	} else {
		c.lastErr = nil
	}
	k.update(now, c)
}

// derive is the effective state of a live connection from its transport
// and health.
func (k *Core) derive(c *Conn) State {
	switch c.transport {
	case connectivity.Ready:
		switch {
		case !k.cfg.HealthCheck:
			return Ready
		case c.reported && c.serving:
			return Ready
		case c.reported:
			return NotServing
		case !c.settled:
			return Starting
		default:
			return Connecting // reconnected; its server has not reported yet
		}
	case connectivity.TransientFailure:
		return Failing
	default:
		if !c.settled {
			return Starting
		}
		return Connecting
	}
}

// update re-derives c's state and acts on what changed, then publishes.
func (k *Core) update(now time.Time, c *Conn) {
	k.setState(now, c, k.derive(c))
	k.publish()
}

// setState is the one setter of a connection's effective state, and where
// the decisions that follow a state change are made: a recycle's
// replacement that became ready retires the connection it replaces; a
// growth that failed is given up.
func (k *Core) setState(now time.Time, c *Conn, s State) {
	if c.state == s {
		return
	}
	from := c.state
	c.state = s
	b := c.Backend
	k.touch(b)
	k.trackReady(now, b, from, s)
	k.logState(c, from, s)
	k.cfg.Observer.ConnState(c, from, s)
	switch s {
	case Ready:
		if old := c.replaces; old != nil {
			c.replaces = nil
			c.replaceTimer.stop()
			b.recycling = nil
			k.log.Debug("grpcpool: connection recycled", "target", k.cfg.Target, "addr", b.Addr(), "old", old.ID, "new", c.ID)
			k.retire(now, old, "max_age")
		}
		if b.growing == c {
			b.growing, b.growFails = nil, 0
		}
	case Failing, NotServing:
		if old := c.replaces; old != nil {
			// The replacement landed on a backend that cannot serve
			// (behind a VIP, another process): keep the old one.
			k.giveUpReplace(now, c, "replacement_failed")
		}
		if b.growing == c && s == Failing {
			b.growing = nil
			b.growFails++
			back := min(k.cfg.GrowBackoff<<min(b.growFails-1, 5), 30*k.cfg.GrowBackoff)
			b.growAfter = now.Add(back)
			k.seam.After(back, Timer{Kind: GrowTimer, Backend: b})
			k.log.Info("grpcpool: growing backend failed", "target", k.cfg.Target, "addr", b.Addr(), "err", c.lastErr, "retry_in", back)
			k.retire(now, c, "growth_failed")
		}
	}
}

// warnEvery is the least time between two warnings about one backend's
// connections; the changes between them are logged at debug level and
// counted in the next warning, so a fleet that flaps does not flood the
// log.
const warnEvery = 10 * time.Second

// logState logs a connection's state change: at warn level, with its
// cause, when it stops or starts serving, at most once per warnEvery per
// backend; at debug level otherwise.
func (k *Core) logState(c *Conn, from, to State) {
	b := c.Backend
	warn := to == Failing || to == NotServing || to == Ready && (from == Failing || from == NotServing)
	if warn && (b.warnedAt.IsZero() || k.at.Sub(b.warnedAt) >= warnEvery) {
		args := []any{"target", k.cfg.Target, "addr", b.Addr(), "conn", c.ID, "from", from.String(), "to", to.String()}
		if c.lastErr != nil && to != Ready {
			args = append(args, "err", c.lastErr)
		}
		if b.unwarned > 0 {
			args = append(args, "changes_not_logged", b.unwarned)
		}
		k.log.Warn("grpcpool: connection "+to.String(), args...)
		b.warnedAt, b.unwarned = k.at, 0
		return
	}
	if warn {
		b.unwarned++
	}
	k.log.Debug("grpcpool: connection "+to.String(), "target", k.cfg.Target, "addr", b.Addr(), "conn", c.ID, "from", from.String(), "err", c.lastErr)
}

func (k *Core) giveUpReplace(now time.Time, nc *Conn, why string) {
	old := nc.replaces
	nc.replaces = nil
	nc.replaceTimer.stop()
	b := nc.Backend
	b.recycling = nil
	k.log.Debug("grpcpool: replacement not ready; keeping the old connection", "target", k.cfg.Target, "addr", b.Addr(), "conn", old.ID, "why", why)
	k.retire(now, nc, why)
	if old.state.Live() && k.cfg.MaxConnAge > 0 {
		old.ageTimer = k.seam.After(k.cfg.Jitter(k.cfg.MaxConnAge), Timer{Kind: AgeTimer, Conn: old})
	}
}

// Retire stops c taking new calls; it closes once nothing is in flight on
// it, or the drain timeout passes. Its backend's floor is restored.
func (k *Core) Retire(now time.Time, c *Conn, why string) {
	k.at = now
	k.retire(now, c, why)
	k.publish()
}

func (k *Core) retire(now time.Time, c *Conn, why string) {
	if !c.state.Live() {
		return
	}
	b := c.Backend
	c.why = why
	active := c.Hot.retire()
	k.cfg.Observer.Retired(c, why)
	c.ageTimer.stop()
	c.healthTimer.stop()
	k.setState(now, c, Draining)
	if nc := k.replacementOf(c); nc != nil {
		// The connection being replaced went first: its replacement
		// simply takes its place.
		nc.replaces = nil
		nc.replaceTimer.stop()
		b.recycling = nil
	}
	if c.replaces != nil {
		old := c.replaces
		c.replaces = nil
		c.replaceTimer.stop()
		b.recycling = nil
		if old.state.Live() && k.cfg.MaxConnAge > 0 {
			old.ageTimer = k.seam.After(k.cfg.Jitter(k.cfg.MaxConnAge), Timer{Kind: AgeTimer, Conn: old})
		}
	}
	if b.growing == c {
		b.growing = nil
	}
	k.log.Debug("grpcpool: draining connection", "target", k.cfg.Target, "addr", b.Addr(), "conn", c.ID, "why", why, "active", active)
	if active == 0 {
		k.closeConn(c)
	} else if k.cfg.DrainTimeout > 0 {
		c.drainTimer = k.seam.After(k.cfg.DrainTimeout, Timer{Kind: DrainTimer, Conn: c})
	}
	k.ensureFloor(now, b)
}

func (k *Core) replacementOf(c *Conn) *Conn {
	for _, x := range c.Backend.conns {
		if x.replaces == c {
			return x
		}
	}
	return nil
}

// Drained reports that a draining connection has nothing in flight.
func (k *Core) Drained(now time.Time, c *Conn) {
	k.at = now
	if c.state == Draining && c.Active() == 0 {
		k.closeConn(c)
	}
}

func (k *Core) closeConn(c *Conn) {
	c.drainTimer.stop()
	k.cfg.Observer.ConnState(c, c.state, Closed)
	c.state = Closed
	b := c.Backend
	k.touch(b)
	for i, x := range b.conns {
		if x == c {
			b.conns = append(b.conns[:i:i], b.conns[i+1:]...)
			break
		}
	}
	k.log.Debug("grpcpool: connection closed", "target", k.cfg.Target, "addr", b.Addr(), "conn", c.ID, "why", c.why)
	k.seam.Close(c)
	k.dropIfDone(b)
}

func (k *Core) dropIfDone(b *Backend) {
	if !b.removed || len(b.conns) > 0 {
		return
	}
	for i, x := range k.retired {
		if x == b {
			k.retired = append(k.retired[:i:i], k.retired[i+1:]...)
			return
		}
	}
}

// Fire handles a timer the Core scheduled.
func (k *Core) Fire(now time.Time, t Timer) {
	k.at = now
	if k.closed {
		return
	}
	c, b := t.Conn, t.Backend
	if b != nil {
		k.touch(b)
	}
	switch t.Kind {
	case AgeTimer:
		k.recycle(now, c)
	case ReplaceTimer:
		if c.replaces != nil && c.state.Live() {
			k.giveUpReplace(now, c, "replacement_not_ready")
		}
	case DrainTimer:
		if c.state == Draining {
			k.log.Info("grpcpool: drain timeout cut calls", "target", k.cfg.Target, "addr", c.Backend.Addr(), "conn", c.ID, "active", c.Active())
			k.closeConn(c)
		}
	case HealthTimer:
		if c.state.Live() && c.transport == connectivity.Ready && !c.reported {
			c.reported, c.serving, c.settled = true, false, true
			c.lastErr = fmt.Errorf("no health report within %v", k.cfg.HealthTimeout)
			k.setState(now, c, k.derive(c))
		}
	case ProbeTimer:
		if !b.removed && b.BreakerState() == breaker.StateOpen {
			// Let the backend be picked again: its breaker answers Allow
			// with the half-open probes.
			b.brkState.Store(int32(breaker.StateHalfOpen))
		}
	case LimitTimer:
		if b.limit > 0 {
			k.log.Info("grpcpool: learned stream limit expired", "target", k.cfg.Target, "addr", b.Addr(), "limit", b.limit)
			b.limit = 0
			for _, x := range b.conns {
				x.limit.Store(k.cfg.MaxStreams)
			}
			k.cfg.Observer.LimitLearned(b, 0)
		}
	case GrowTimer:
		// The backoff ended: pickers may ask for growth again.
	case IdleTimer:
		k.shrinkIdle(now)
		k.idle = k.seam.After(k.idleEvery(), Timer{Kind: IdleTimer})
	}
	k.publish()
}

// recycle replaces c, which reached its max age: a new connection to the
// same backend is dialed, and c is retired only once the new one is Ready.
// One connection per backend is replaced at a time.
func (k *Core) recycle(now time.Time, c *Conn) {
	b := c.Backend
	if !c.state.Live() || b.removed {
		return
	}
	if b.recycling != nil {
		// Another connection of b is being replaced: try again shortly,
		// soon enough that short ages are still kept.
		d := k.cfg.Jitter(min(time.Second, max(k.cfg.MaxConnAge/10, 10*time.Millisecond)))
		c.ageTimer = k.seam.After(d, Timer{Kind: AgeTimer, Conn: c})
		return
	}
	b.recycling = c
	nc := k.dial(now, b)
	nc.replaces = c
	nc.replaceTimer = k.seam.After(k.cfg.ReplaceTimeout, Timer{Kind: ReplaceTimer, Conn: nc})
}

// shrinkIdle retires connections above the floor that carried nothing
// for the idle timeout. It never takes a backend below its floor of live
// connections, nor of ready ones, and never touches a recycle's pair.
func (k *Core) shrinkIdle(now time.Time) {
	for _, b := range k.order {
		live, ready := 0, 0
		for _, c := range b.conns {
			if c.state.Live() && c.replaces == nil {
				live++
				if c.state == Ready {
					ready++
				}
			}
		}
		for _, c := range append([]*Conn(nil), b.conns...) {
			if live <= k.cfg.Size || !c.state.Live() || c.replaces != nil || c == b.recycling || c == b.growing || c.state == Starting {
				continue
			}
			if u := c.uses.Load(); u != c.idleUses || c.Active() > 0 {
				c.idleUses, c.idleSince = u, now
				continue
			}
			if now.Sub(c.idleSince) < k.cfg.IdleTimeout {
				continue
			}
			if c.state == Ready && ready-1 < k.cfg.Size {
				continue
			}
			if c.state == Ready {
				ready--
			}
			live--
			k.log.Info("grpcpool: shrinking backend", "target", k.cfg.Target, "addr", b.Addr(), "conns", live)
			k.retire(now, c, "idle")
		}
	}
}

// Grow adds a connection to b because a pick found all of its connections
// full, unless one is being added, b is at its maximum size, the last
// growth failed within its backoff, or room appeared meanwhile. Whatever
// it decides, it publishes a new picker: the calls waiting for the growth
// pick again from it.
func (k *Core) Grow(now time.Time, b *Backend) {
	k.at = now
	defer b.growReq.Store(false)
	k.touch(b)
	if k.closed || b.removed || b.growing != nil || now.Before(b.growAfter) || liveCount(b) >= k.cfg.MaxSize {
		return
	}
	for _, c := range b.conns {
		if c.state == Ready && !c.Full() {
			return // room appeared meanwhile
		}
	}
	nc := k.dial(now, b)
	nc.grow = true
	b.growing = nc
	k.touch(b)
	k.log.Info("grpcpool: growing backend", "target", k.cfg.Target, "addr", b.Addr(), "conns", liveCount(b), "limit", nc.Limit())
	k.publish()
}

// Stalled reports that a stream of call (an identity the caller chooses,
// the same for every attempt of one call) waited on c, past the stall
// timeout, while n streams were open on it: evidence that the server's
// MAX_CONCURRENT_STREAMS is n. One call's stalls prove nothing (a slow
// credentials refresh, a reconnect, an interceptor): a limit is learned
// when a stall of another call on the backend, within the limit's
// lifetime, comes at the same count. It reports whether the backend's
// limit is now known (learned now or before, at most n).
func (k *Core) Stalled(now time.Time, c *Conn, n int64, call uint64) bool {
	k.at = now
	b := c.Backend
	if k.closed || !k.cfg.LearnLimits || k.cfg.MaxStreams > 0 || n < 1 || b.removed {
		return false
	}
	if b.limit > 0 && b.limit <= n {
		if l := c.Limit(); l == 0 || l > b.limit {
			c.limit.Store(b.limit)
		}
		return true
	}
	ttl := k.cfg.LimitTTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	if b.stallN != n || b.stallCall == call || now.Sub(b.stallAt) > ttl {
		b.stallN, b.stallAt, b.stallCall = n, now, call
		k.log.Debug("grpcpool: stream stalled; limit not yet confirmed", "target", k.cfg.Target, "addr", b.Addr(), "conn", c.ID, "open", n)
		return false
	}
	b.stallN = 0
	b.limit = n
	for _, x := range b.conns {
		x.limit.Store(n)
	}
	k.touch(b)
	b.limitTimer.stop()
	b.limitTimer = k.seam.After(ttl, Timer{Kind: LimitTimer, Backend: b})
	k.log.Info("grpcpool: learned stream limit", "target", k.cfg.Target, "addr", b.Addr(), "conn", c.ID, "limit", n)
	k.cfg.Observer.LimitLearned(b, n)
	k.publish()
	k.Grow(now, b)
	return true
}

// BreakerChanged reports that b's breaker changed state; the state it is
// in now was stored with BackendHot.StoreBreakerState when it changed (so
// a change reported late never undoes a later one). An open breaker takes
// b out of the pickers until its open timeout, when it is offered
// half-open (gobreaker moves to half-open only when asked, and a backend
// the pickers skip is never asked).
func (k *Core) BreakerChanged(now time.Time, b *Backend) {
	k.at = now
	b.probeTimer.stop()
	k.touch(b)
	if b.BreakerState() == breaker.StateOpen && !b.removed && !k.closed && b.Breaker != nil {
		b.probeTimer = k.seam.After(max(b.Breaker.OpenUntil().Sub(now), 0), Timer{Kind: ProbeTimer, Backend: b})
	}
	k.publish()
}

// Close stops the Core: every timer is stopped, the closed picker is
// published, and it returns every connection for the caller to close.
func (k *Core) Close(now time.Time, closedErr error) []*Conn {
	if k.closed {
		return nil
	}
	k.closed = true
	if k.idle != nil {
		k.idle()
	}
	var all []*Conn
	for _, b := range k.Backends() {
		b.probeTimer.stop()
		b.limitTimer.stop()
		b.rampTimer.stop()
		for _, c := range b.conns {
			c.ageTimer.stop()
			c.drainTimer.stop()
			c.healthTimer.stop()
			c.replaceTimer.stop()
			c.Hot.retire()
			c.state = Closed
			all = append(all, c)
		}
	}
	k.picker = k.picker.next(&Picker{err: closedErr})
	k.seam.Publish(k.picker)
	return all
}
