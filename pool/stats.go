package pool

import (
	"time"

	"google.golang.org/grpc/connectivity"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/core"
)

// Stats is a snapshot of a pool: one BackendStats per backend, resolved
// ones first in resolver order, then removed ones still draining. It is a
// plain value that shares nothing with the pool: safe to keep, copy and
// read from any goroutine.
type Stats struct {
	Target   string
	Policy   Policy
	Closed   bool
	Backends []BackendStats

	// Zone is the client's zone (WithZone); "" when zone-aware routing is
	// off. LocalShare is the share of calls the pool keeps in it now (1
	// when off, 0 while no backend can take a call, the zone's share of
	// the ready backends while fewer than WithZoneMinBackends are; see
	// docs/policies.md).
	Zone       string
	LocalShare float64
}

// BackendStats describes one backend: a resolved address and the
// connections the pool keeps to it. A plain value, like Stats.
type BackendStats struct {
	Addr    string // the address connections dial
	Zone    string // its zone (WithAddressZone, WithZonesByCIDR); "" when unknown
	Weight  uint32 // see WithAddressWeight; 1 by default
	Removed bool   // no longer resolved; its connections drain

	Ready      int // connections taking calls: READY and, with health checking, serving
	Connecting int // connections not taking calls (starting, connecting, failing, not serving)
	Draining   int // connections retired, finishing their calls

	ActiveCalls   int64  // unary calls in flight
	ActiveStreams int64  // streams open
	Calls         uint64 // logical calls and streams whose last attempt it took (retries and hedges elsewhere not counted; a hedged call: the attempt whose answer or error it ended with)
	Attempts      uint64 // attempts placed on it: first tries, retries, hedges and re-placements
	Failures      uint64 // calls and streams that ended in a failure (see breaker.DefaultClassifier)

	WarmupFailures uint64 // warm-ups of its connections that failed or timed out (WithWarmup)

	Breaker     breaker.State // the state the pickers act on; breaker.StateClosed without WithBreaker
	Healthy     bool          // a connection that is not draining has no NOT_SERVING health report
	StreamLimit int64         // the stream limit per connection, configured or learned; 0: none known
	LastError   string        // the last connection error of one of its connections; "" if none

	OldestConnAge time.Duration // age of its oldest connection that is not draining
	Conns         []ConnStats
}

// Active returns the calls and streams the backend carries.
func (b BackendStats) Active() int64 { return b.ActiveCalls + b.ActiveStreams }

// ConnStats describes one connection. A plain value, like Stats.
type ConnStats struct {
	ID        uint64
	State     connectivity.State // what its transport last reported
	Status    string             // its effective state: starting, ready, not_serving, connecting, failing, draining
	LastError string             // its last connection or health error; "" once READY and serving
	Draining  bool
	Active    int64 // calls and streams on it
	Limit     int64 // known stream limit; 0: none known
	Age       time.Duration
}

// Stats returns a snapshot of the pool's backends and connections. It is
// safe to call at any time, also after Close. Its counts read the same
// connection states the pickers and the Unavailable messages do.
func (p *Pool) Stats() Stats {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stats{Target: p.target, Policy: p.o.policy, Closed: p.core.Closed(), Zone: p.o.zones.zone, LocalShare: 1}
	if pk := p.core.Picker(); pk != nil && pk.Ready() {
		st.LocalShare = pk.LocalShare()
	} else if st.Zone != "" {
		st.LocalShare = 0 // nothing can take a call, local or not
	}
	for _, b := range p.core.Backends() {
		bs := BackendStats{
			Addr:          b.Addr(),
			Zone:          b.Zone,
			Weight:        b.Weight(),
			Removed:       b.Removed(),
			ActiveCalls:   b.Calls.Load(),
			ActiveStreams: b.Streams.Load(),
			Calls:         b.Ended.Load(),
			Attempts:      b.Started.Load(),
			Failures:      b.Failures.Load(),
			Breaker:       b.BreakerState(),
			StreamLimit:   b.Limit(),
		}
		bs.WarmupFailures = b.WarmFail.Load()
		if bs.StreamLimit == 0 {
			bs.StreamLimit = int64(p.o.maxStreams)
		}
		for _, c := range b.Conns() {
			cs := ConnStats{
				ID:       c.ID,
				State:    c.Transport(),
				Status:   c.State().String(),
				Draining: !c.State().Live(),
				Active:   c.Active(),
				Limit:    c.Limit(),
				Age:      now.Sub(c.Created()),
			}
			if err := c.LastErr(); err != nil {
				cs.LastError = err.Error()
				bs.LastError = cs.LastError
			}
			switch c.State() {
			case core.Ready:
				bs.Ready++
				bs.Healthy = true
			case core.Draining, core.Closed:
				bs.Draining++
			case core.NotServing:
				bs.Connecting++
			default:
				bs.Connecting++
				bs.Healthy = true
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
