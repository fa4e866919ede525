package pool

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/breaker"
)

// A backend is one resolved address (or endpoint) and the connections the
// pool keeps to it.
type backend struct {
	key   string
	addrs []resolver.Address // what its connections dial
	brk   *breaker.Breaker   // nil without WithBreaker

	// Hot-path counters.
	calls    atomic.Int64  // unary calls in flight
	streams  atomic.Int64  // streams open
	started  atomic.Uint64 // calls and streams started
	failures atomic.Uint64 // calls and streams that ended in a failure
	brkState atomic.Int32  // last breaker.State reported; read by rebuilds
	limit    atomic.Int64  // stream limit learned from a stalled connection; 0: none
	growReq  atomic.Bool   // a connection is being added on demand

	// Guarded by Pool.mu.
	weight    uint32
	conns     []*conn
	removed   bool // no longer resolved: draining
	replacing bool // a recycle is under way (one at a time per backend)
	probeAt   *time.Timer
}

func (b *backend) load() int64 { return b.calls.Load() + b.streams.Load() }

// addr is the backend's address as reported in Stats.
func (b *backend) addr() string { return b.addrs[0].Addr }

// A conn is one grpc.ClientConn to a backend.
type conn struct {
	b       *backend
	id      uint64
	cc      *grpc.ClientConn
	created time.Time

	active   atomic.Int64  // calls and streams on it
	uses     atomic.Uint64 // times it went from idle to busy
	state    atomic.Int32  // connectivity.State
	draining atomic.Bool   // takes no new calls
	settled  atomic.Bool   // its first connection attempt has ended
	limit    atomic.Int64  // known stream limit; 0: none known
	open     atomic.Int64  // unary calls in flight and streams past NewStream: what the server admitted
	// unhealthy: health checking reports its server not serving. With
	// health checking on, a connection starts unhealthy until the first
	// report.
	unhealthy atomic.Bool

	readyMu      sync.Mutex
	ready        chan struct{}      // closed when READY; renewed by awaitReady
	healthCancel context.CancelFunc // ends the health watch; guarded by readyMu
	drainOnce    sync.Once
	drained      chan struct{} // closed when draining and nothing is in flight

	// Guarded by Pool.mu.
	ageTimer  *time.Timer
	idleSince time.Time // with idleUses: when the idle scan last saw it change
	idleUses  uint64
	retireWhy string
}

func (c *conn) pickable() bool {
	return connectivity.State(c.state.Load()) == connectivity.Ready && !c.draining.Load() && !c.unhealthy.Load()
}

// full reports whether the conn carries as many calls as it may.
func (c *conn) full() bool {
	l := c.limit.Load()
	return l > 0 && c.active.Load() >= l
}

func (c *conn) markReady() {
	c.readyMu.Lock()
	defer c.readyMu.Unlock()
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
}

// awaitReady re-arms c.ready if c is not READY now, so a waiter blocks
// until it is READY again.
func (c *conn) awaitReady() {
	c.readyMu.Lock()
	defer c.readyMu.Unlock()
	if connectivity.State(c.state.Load()) == connectivity.Ready {
		return
	}
	select {
	case <-c.ready:
		c.ready = make(chan struct{})
	default:
	}
}

func (c *conn) readyCh() <-chan struct{} {
	c.readyMu.Lock()
	defer c.readyMu.Unlock()
	return c.ready
}

func (c *conn) setHealthCancel(f context.CancelFunc) {
	c.readyMu.Lock()
	c.healthCancel = f
	c.readyMu.Unlock()
}

// leftReady ends the health watch of a connection that is no longer READY
// and, with health checking (checked), marks it not serving until the
// server it reconnects to reports afresh: that may be another process, not
// serving yet. Both happen under readyMu, so no report of the ended watch
// can land after them (see setHealth).
func (c *conn) leftReady(checked bool) {
	c.readyMu.Lock()
	defer c.readyMu.Unlock()
	if f := c.healthCancel; f != nil {
		c.healthCancel = nil
		f()
	}
	if checked {
		c.unhealthy.Store(true)
	}
}

// setHealth records a report of the health watch whose context is ctx,
// unless that watch has ended. It returns whether the report was recorded
// and whether it changed whether c is healthy.
func (c *conn) setHealth(ctx context.Context, unhealthy bool) (recorded, changed bool) {
	c.readyMu.Lock()
	defer c.readyMu.Unlock()
	if ctx.Err() != nil {
		return false, false
	}
	return true, c.unhealthy.Swap(unhealthy) != unhealthy
}

func (c *conn) signalDrained() { c.drainOnce.Do(func() { close(c.drained) }) }

// acquire places a call on c. It fails, leaving nothing counted, when c
// started draining after the snapshot that offered it was taken: the
// drainer sets draining before it reads active, and acquire adds to active
// before it reads draining, so one of them sees the other.
func (c *conn) acquire() bool {
	if c.active.Add(1) == 1 {
		// Counted only when c goes from idle to busy, which is all the
		// idle scan needs, and keeps a busy connection's hot path to one
		// shared write.
		c.uses.Add(1)
	}
	if c.draining.Load() {
		c.release()
		return false
	}
	return true
}

func (c *conn) release() {
	if c.active.Add(-1) == 0 && c.draining.Load() {
		c.signalDrained()
	}
}

// staticBuilder resolves a pool connection's target to its backend's
// addresses, attributes and all, and gives the connection the pool target's
// authority, so TLS checks the target's host name, never the dialed IP.
type staticBuilder struct {
	addrs     []resolver.Address
	authority string
}

const connScheme = "grpcpool"

func (b staticBuilder) Scheme() string { return connScheme }

func (b staticBuilder) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	if err := cc.UpdateState(resolver.State{Addresses: b.addrs}); err != nil {
		cc.ReportError(err)
	}
	return nopResolver{}, nil
}

func (b staticBuilder) OverrideAuthority(resolver.Target) string { return b.authority }
