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
	"log/slog"
	"math/rand/v2"
	"time"
)

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
	landed   uint64    // growths landed (connections Grow dialed that became Ready)
	clock    *clock
	ctr      *counters // the pickers' counters

	zones       map[string]*zoneState // zone-aware routing: per zone, made on first use
	zoneClients map[string]float64    // the fleet's clients per zone; nil: even
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
	if cfg.IdleTimeout > 0 && cfg.MaxSize > cfg.Size {
		k.idle = seam.After(k.idleEvery(), Timer{Kind: IdleTimer})
	}
	k.publish()
	k.Flush()
	return k
}

// touch marks b's entry in the pickers out of date.
func (k *Core) touch(b *Backend) {
	b.dirty = true
	k.stale = true
}

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

// Close stops the Core: every timer is stopped, every connection is
// retired and Closed (the observer hears none of it: the pool is going),
// the closed picker is published, and it returns every connection for the
// caller to close.
func (k *Core) Close(now time.Time, closedErr error) []*Conn {
	if k.closed {
		return nil
	}
	k.at = now
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
			c.stopTimers()
			c.Hot.retire()
			k.setState(now, c, Closed)
			all = append(all, c)
		}
	}
	k.install(k.picker, k.picker.next(&Picker{err: closedErr}))
	return all
}
