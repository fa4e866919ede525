package retry

import "google.golang.org/grpc"

// idempotentOption and notRetryableOption mark one call. They embed
// grpc.EmptyCallOption, so gRPC itself ignores them; they are zero-sized,
// so passing one does not allocate.
type (
	idempotentOption   struct{ grpc.EmptyCallOption }
	notRetryableOption struct{ grpc.EmptyCallOption }
)

// Idempotent returns a call option that marks one call idempotent: the
// pool may retry it also after its request may have reached the server
// (see [Policy.Idempotent]), under the retry policy that applies to its
// method. It does not turn retries on for a method no policy covers, nor
// hedging on. The value is safe for concurrent use and reuse.
func Idempotent() grpc.CallOption { return idempotentOption{} }

// NotRetryable returns a call option that keeps one call from being
// retried or hedged, whatever the policy of its method says: it makes one
// attempt. It beats [Idempotent] if both are given. The value is safe for
// concurrent use and reuse.
func NotRetryable() grpc.CallOption { return notRetryableOption{} }

// CallMarks are the marks a call's options carry: a plain value, safe for
// concurrent use.
type CallMarks struct {
	Idempotent   bool // Idempotent() was given (and NotRetryable() was not)
	NotRetryable bool // NotRetryable() was given
}

// FromCallOptions reads the marks of [Idempotent] and [NotRetryable] from a
// call's options. It does not allocate; its cost grows with len(opts).
func FromCallOptions(opts []grpc.CallOption) CallMarks {
	var m CallMarks
	for _, o := range opts {
		switch o.(type) {
		case idempotentOption:
			m.Idempotent = true
		case notRetryableOption:
			m.NotRetryable = true
		}
	}
	if m.NotRetryable {
		m.Idempotent = false
	}
	return m
}
