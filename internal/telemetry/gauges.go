package telemetry

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/metric"

	"github.com/grpcpool/grpcpool/breaker"
)

// A GaugeObserver takes the pool's gauge values during a collection.
// It is only valid inside the callback given to RegisterGauges, and only
// on the goroutine that runs it.
type GaugeObserver interface {
	// Connections reports n connections of backend in state. Calls for
	// the same backend and state add up. Every state of a backend
	// reported at all is exported, at 0 when it was not reported.
	Connections(backend string, state ConnState, n int)
	// StreamLimit reports the per-connection stream limit of backend,
	// configured or learned; limits ≤ 0 (unknown) are not exported. For
	// the backends aggregated under Other the smallest limit is exported.
	StreamLimit(backend string, limit int64)
	// Breaker reports the state of backend's circuit breaker (only with
	// breakers configured). Every state of a backend reported is
	// exported: 1 for the state it is in, 0 for the others; under Other,
	// how many backends are in each.
	Breaker(backend string, state breaker.State)
}

// ErrGaugesRegistered is returned by RegisterGauges when a callback is
// already registered.
var ErrGaugesRegistered = errors.New("telemetry: gauges already registered")

// RegisterGauges has f called at every collection to report the
// connections, stream limits and breaker states of the pool's backends.
// f may take the pool's locks; it runs on the SDK's collecting goroutine,
// one collection at a time. At most one callback per Recorder; Close
// unregisters it. On a nil or no-op Recorder it does nothing.
func (r *Recorder) RegisterGauges(f func(GaugeObserver)) error {
	if r == nil || r.off {
		return nil
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if r.reg != nil || r.closed.Load() {
		return ErrGaugesRegistered
	}
	reg, err := r.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if r.closed.Load() {
			return nil
		}
		r.gaugeMu.Lock()
		defer r.gaugeMu.Unlock()
		f(gaugeObserver{r})
		for _, s := range r.seen {
			for st, n := range s.connN {
				o.ObserveInt64(r.conns, n, s.conns[st]...)
			}
			if s.limitN > 0 {
				o.ObserveInt64(r.limits, s.limitN, s.limit...)
			}
			if s.breakerS {
				for st, n := range s.breakerN {
					o.ObserveInt64(r.breakers, n, s.breakers[st]...)
				}
			}
			s.connN, s.limitN, s.breakerN, s.breakerS, s.seen = [numConnStates]int64{}, 0, [numBreakerStates]int64{}, false, false
		}
		clear(r.seen)
		r.seen = r.seen[:0]
		return nil
	}, r.conns, r.limits, r.breakers)
	if err != nil {
		return err
	}
	r.reg = reg
	return nil
}

// Close unregisters the gauge callback; the Recorder's other methods
// keep working. It is idempotent. A collection already running may still
// call the callback once; Close waits for the SDK to finish it, so do not
// call Close while holding a lock the callback takes.
func (r *Recorder) Close() error {
	if r == nil || r.off || r.closed.Swap(true) {
		return nil
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if r.reg == nil {
		return nil
	}
	return r.reg.Unregister()
}

// gaugeObserver accumulates into the series; the callback holds gaugeMu.
type gaugeObserver struct{ r *Recorder }

func (g gaugeObserver) mark(backend string) *series {
	s := g.r.series(backend)
	if !s.seen {
		s.seen = true
		g.r.seen = append(g.r.seen, s)
	}
	return s
}

func (g gaugeObserver) Connections(backend string, state ConnState, n int) {
	g.mark(backend).connN[connIndex(state)] += int64(n)
}

func (g gaugeObserver) StreamLimit(backend string, limit int64) {
	s := g.mark(backend)
	if limit > 0 && (s.limitN == 0 || limit < s.limitN) {
		s.limitN = limit
	}
}

func (g gaugeObserver) Breaker(backend string, state breaker.State) {
	s := g.mark(backend)
	s.breakerN[breakerIndex(state)]++
	s.breakerS = true
}
