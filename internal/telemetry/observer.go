package telemetry

import (
	"github.com/grpcpool/grpcpool/internal/core"
)

// CoreObserver reports the decision core's decisions to R: every
// retirement as a recycle with the core's reason, a connection the drain
// timeout closed while it still carried calls, and the last connection of
// a removed backend closing with nothing in flight, which releases the
// backend's grpcpool.backend value (ForgetBackend; when calls the drain
// timeout cut are still ending, the last of them releases it, see
// core.BackendHot.LastCallEnded). Give it to the core
// as core.Config.Observer. Its methods run with the core's
// serialisation held, as the core calls them; R may be nil.
type CoreObserver struct{ R *Recorder }

var _ core.Observer = CoreObserver{}

// ConnState handles a connection's state change.
func (o CoreObserver) ConnState(c *core.Conn, from, to core.State) {
	if to != core.Closed {
		return
	}
	b := c.Backend
	active := c.Active()
	if from == core.Draining && active > 0 {
		o.R.DrainTimeout(b.Addr())
	}
	if b.LastCallEnded() {
		o.R.ForgetBackend(b.Addr())
	}
}

// Retired handles a retirement.
func (o CoreObserver) Retired(c *core.Conn, reason string) { o.R.Recycle(c.Backend.Addr(), reason) }

// LimitLearned does nothing: the stream limit is a gauge, read by
// ObserveBackends at each collection.
func (CoreObserver) LimitLearned(*core.Backend, int64) {}

// ObserveBackends reports the connections, stream limits and breaker
// states of backends to o, for the gauge callback given to
// RegisterGauges. The caller holds the core's serialisation. A backend's
// stream limit is its learned one, else configured (0: none);
// breakers tells whether the pool has breakers.
func ObserveBackends(o GaugeObserver, backends []*core.Backend, configured int64, breakers bool) {
	for _, b := range backends {
		addr := b.Addr()
		for _, c := range b.Conns() {
			o.Connections(addr, ConnState(c.State()), 1)
		}
		limit := b.Limit()
		if limit == 0 {
			limit = configured
		}
		o.StreamLimit(addr, limit)
		if breakers {
			st := b.BreakerState()
			if b.Breaker != nil {
				st = b.Breaker.State()
			}
			o.Breaker(addr, st)
		}
	}
}
