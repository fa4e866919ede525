package pool

import (
	"time"

	"google.golang.org/grpc/connectivity"

	"github.com/grpcpool/grpcpool/breaker"
)

// Stats is a snapshot of a pool: one BackendStats per backend, resolved
// ones first in resolver order, then removed ones still draining.
type Stats struct {
	Target   string
	Policy   Policy
	Closed   bool
	Backends []BackendStats
}

// BackendStats describes one backend: a resolved address and the
// connections the pool keeps to it.
type BackendStats struct {
	Addr    string // the address connections dial
	Weight  uint32 // see WithAddressWeight; 1 by default
	Removed bool   // no longer resolved; its connections drain

	Ready      int // connections taking calls
	Connecting int // connections not READY (connecting, idle, failing)
	Draining   int // connections retired, finishing their calls

	ActiveCalls   int64  // unary calls in flight
	ActiveStreams int64  // streams open
	Calls         uint64 // calls and streams started
	Failures      uint64 // calls and streams that ended in a failure (see breaker.DefaultClassifier)

	Breaker     breaker.State // breaker.StateClosed without WithBreaker
	Healthy     bool          // a connection that is not draining has no NOT_SERVING health report
	StreamLimit int64         // the stream limit per connection, configured or learned; 0: none known

	OldestConnAge time.Duration // age of its oldest connection that is not draining
	Conns         []ConnStats
}

// Active returns the calls and streams the backend carries.
func (b BackendStats) Active() int64 { return b.ActiveCalls + b.ActiveStreams }

// ConnStats describes one connection.
type ConnStats struct {
	ID       uint64
	State    connectivity.State
	Draining bool
	Active   int64 // calls and streams on it
	Limit    int64 // known stream limit; 0: none known
	Age      time.Duration
}

// Stats returns a snapshot of the pool's backends and connections. It is
// safe to call at any time, also after Close.
func (p *Pool) Stats() Stats {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stats{Target: p.target, Policy: p.o.policy, Closed: p.closing}
	for _, b := range p.allBackendsLocked() {
		bs := BackendStats{
			Addr:          b.addr(),
			Weight:        b.weight,
			Removed:       b.removed,
			ActiveCalls:   b.calls.Load(),
			ActiveStreams: b.streams.Load(),
			Calls:         b.started.Load(),
			Failures:      b.failures.Load(),
			Breaker:       breaker.State(b.brkState.Load()),
			StreamLimit:   p.limitFor(b),
		}
		if b.brk != nil {
			bs.Breaker = b.brk.State()
		}
		for _, c := range b.conns {
			cs := ConnStats{
				ID:       c.id,
				State:    connectivity.State(c.state.Load()),
				Draining: c.draining.Load(),
				Active:   c.active.Load(),
				Limit:    c.limit.Load(),
				Age:      now.Sub(c.created),
			}
			if !cs.Draining && !c.unhealthy.Load() {
				bs.Healthy = true
			}
			switch {
			case cs.Draining:
				bs.Draining++
			case cs.State == connectivity.Ready:
				bs.Ready++
			default:
				bs.Connecting++
			}
			if !cs.Draining && cs.Age > bs.OldestConnAge {
				bs.OldestConnAge = cs.Age
			}
			bs.Conns = append(bs.Conns, cs)
		}
		st.Backends = append(st.Backends, bs)
	}
	return st
}
