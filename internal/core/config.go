package core

import (
	"log/slog"
	"math/rand/v2"
	"time"

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
	// Zone turns zone-aware routing on: the client's zone (see
	// zonepick.go). "": off.
	Zone string
	// ZoneMinBackends is Envoy's min_cluster_size: while fewer backends
	// can take calls, the zones split the calls by capacity alone, as
	// without zone-aware routing (see zoneSplit). 0 or 1: no minimum.
	ZoneMinBackends int

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

// Jitter returns d ±10 %.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}
