// Package telemetry records the pool's OpenTelemetry metrics: the
// instruments of the "Metric instruments" table in docs/operations.md,
// with the attribute sets the hot path needs computed once and cached, so
// recording an event allocates nothing.
//
// The pool makes one [Recorder] per Pool with [New] and reports events
// through its methods. A nil *Recorder, or one made on a no-op
// MeterProvider, records nothing and costs a few nanoseconds per event.
package telemetry
