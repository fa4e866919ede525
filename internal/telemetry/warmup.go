package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Warmups counts the warm-ups (pool.WithWarmup) of a backend's
// connections, by outcome.
const Warmups = "grpcpool.connection.warmups"

// AttrOutcome is the outcome of a warm-up.
const AttrOutcome = "grpcpool.outcome"

// WarmupOutcome tells how a warm-up ended, in grpcpool.outcome.
type WarmupOutcome uint8

// The values of grpcpool.outcome.
const (
	WarmupOK      WarmupOutcome = iota // the function returned nil in time
	WarmupError                        // it returned an error
	WarmupTimeout                      // it did not return nil within its timeout
	numWarmupOutcomes
)

var warmupOutcomeNames = [numWarmupOutcomes]string{"ok", "error", "timeout"}

// String returns "ok", "error" or "timeout".
func (o WarmupOutcome) String() string { return warmupOutcomeNames[o%numWarmupOutcomes] }

// warmupInstrument creates the warm-up counter on m.
func warmupInstrument(m metric.Meter) (metric.Int64Counter, error) {
	return m.Int64Counter(Warmups, metric.WithUnit("{warmup}"),
		metric.WithDescription("Warm-ups of new connections before they take calls, by outcome."))
}

// warmupOpts returns the options of a warm-up of series s ending in o.
func (s *series) warmupOpts(o WarmupOutcome) []metric.AddOption {
	return addOpts(set(s.base, attribute.String(AttrOutcome, o.String())))
}

// Warmup records that a warm-up of a connection of backend ended in o.
// Warm-ups are rare (one per new connection), so their options are built
// on each call.
func (r *Recorder) Warmup(backend string, o WarmupOutcome) {
	if r == nil || r.off || !r.warmups.Enabled(context.Background()) {
		return
	}
	r.warmups.Add(context.Background(), 1, r.series(backend).warmupOpts(o)...)
}
