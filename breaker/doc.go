// Package breaker provides the per-backend circuit breakers of grpcpool and
// decides which gRPC outcomes count against a backend.
//
// A [Breaker] wraps a github.com/sony/gobreaker/v2 TwoStepCircuitBreaker. It
// starts closed and lets every call through. After
// [Settings.ConsecutiveFailures] calls in a row end in a [Failure] it opens
// and rejects calls with [ErrOpen] for [Settings.OpenTimeout]. Then it is
// half-open: it lets [Settings.HalfOpenProbes] calls through (more are
// rejected with [ErrTooManyProbes]); if all of them succeed it closes again,
// if one fails it opens again for another OpenTimeout.
//
// Which results are failures is decided by [Settings.Classify], by default
// [DefaultClassifier]: codes that say the backend is unhealthy (Unavailable,
// Internal, Unknown, DataLoss, DeadlineExceeded) are failures, the caller's
// own cancellation is ignored, and codes that describe the request
// (InvalidArgument, NotFound, PermissionDenied, ...) are successes: the
// backend answered.
//
// Every call admitted by [Breaker.Allow] must be reported exactly once:
//
//	done, err := b.Allow()
//	if err != nil {
//		// errors.Is(err, breaker.ErrOpen) or breaker.ErrTooManyProbes:
//		// pick another backend.
//	}
//	err = invoke(ctx)
//	done(err)
//
// A Breaker holds no timers and no goroutines (as gobreaker): state changes
// are computed from the clock when the Breaker is used. An open Breaker
// becomes half-open at [Breaker.OpenUntil], but its state (and the onChange
// callback) only moves when Allow, State or Counts is next called; a pool
// that skips open backends should schedule its own timer for OpenUntil and
// call State then.
package breaker
