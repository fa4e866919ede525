package telemetry

import (
	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/breaker"
)

// Instrument and attribute names: the contract of docs/operations.md.
const (
	ScopeName = "github.com/grpcpool/grpcpool"

	CallDuration    = "grpcpool.client.call.duration"
	AttemptDuration = "grpcpool.client.attempt.duration"
	BackendActive   = "grpcpool.backend.active"
	Connections     = "grpcpool.backend.connections"
	BreakerTrans    = "grpcpool.breaker.transitions"
	BreakerStates   = "grpcpool.breaker.backends"
	RetryAttempts   = "grpcpool.retry.attempts"
	RetryRefusals   = "grpcpool.retry.refused"
	Recycles        = "grpcpool.connection.recycles"
	DrainTimeouts   = "grpcpool.connection.drain_timeouts"
	StreamLimits    = "grpcpool.backend.stream_limit"
	PickWaitTime    = "grpcpool.pick.wait"

	AttrTarget       = "grpcpool.target"
	AttrBackend      = "grpcpool.backend"
	AttrMethod       = "grpc.method"
	AttrStatus       = "grpc.status"
	AttrKind         = "grpcpool.kind"
	AttrConnState    = "grpcpool.connection.state"
	AttrBreakerState = "grpcpool.breaker.state"
	AttrRetryKind    = "grpcpool.retry.kind"
	AttrReason       = "grpcpool.reason"

	// Other is the value of grpcpool.backend for the backends beyond the
	// limit given to New, and of grpc.method for the methods beyond
	// MethodLimit.
	Other = "other"

	// DefaultBackendLimit is the number of distinct backends that get
	// their own grpcpool.backend value when the pool is given no limit.
	DefaultBackendLimit = 100
	// MethodLimit is the number of distinct methods a Recorder labels
	// with their own grpc.method value; further methods are Other.
	MethodLimit = 256
	// ReasonLimit is the number of distinct grpcpool.reason values a
	// backend's recycles have; further reasons are Other.
	ReasonLimit = 32
)

// DurationBuckets are the explicit histogram bucket boundaries, in
// seconds, of every duration instrument: the latency buckets of gRPC's
// OpenTelemetry instrumentation (gRFC A66), 10 µs to 100 s.
var DurationBuckets = []float64{0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1, 2, 5, 10, 20, 50, 100}

// numCodes is the number of gRPC status codes, OK to Unauthenticated.
const numCodes = 17

// codeNames are the canonical names of the status codes (as in
// google.rpc.Code and gRFC A66), indexed by code.
var codeNames = [numCodes]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// codeIndex maps a code to its index in codeNames; codes gRPC does not
// define count as UNKNOWN, as gRPC itself treats them.
func codeIndex(c codes.Code) int {
	if uint32(c) >= numCodes {
		return int(codes.Unknown)
	}
	return int(c)
}

// CodeName returns the canonical name of c ("UNAVAILABLE"), the value of
// grpc.status; codes gRPC does not define are "UNKNOWN".
func CodeName(c codes.Code) string { return codeNames[codeIndex(c)] }

// Kind tells unary calls from streams in grpcpool.kind.
type Kind uint8

// The values of grpcpool.kind.
const (
	KindUnary Kind = iota
	KindStream
	numKinds
)

var kindNames = [numKinds]string{"unary", "stream"}

// String returns "unary" or "stream".
func (k Kind) String() string { return kindNames[k%numKinds] }

// RetryKind tells retries from hedges in grpcpool.retry.kind.
type RetryKind uint8

// The values of grpcpool.retry.kind.
const (
	Retry RetryKind = iota
	Hedge
	numRetryKinds
)

var retryKindNames = [numRetryKinds]string{"retry", "hedge"}

// String returns "retry" or "hedge".
func (k RetryKind) String() string { return retryKindNames[k%numRetryKinds] }

// numBreakerStates is the number of breaker.State values.
const numBreakerStates = 3

// breakerNames are the values of grpcpool.breaker.state, indexed by
// breaker.State: OpenTelemetry enum values are snake_case.
var breakerNames = [numBreakerStates]string{
	breaker.StateClosed:   "closed",
	breaker.StateHalfOpen: "half_open",
	breaker.StateOpen:     "open",
}

// BreakerStateName returns the grpcpool.breaker.state value of s:
// "closed", "half_open" or "open"; unknown states are "closed".
func BreakerStateName(s breaker.State) string { return breakerNames[breakerIndex(s)] }

func breakerIndex(s breaker.State) int {
	if s < 0 || int(s) >= numBreakerStates {
		return int(breaker.StateClosed)
	}
	return int(s)
}

// ConnState is a connection's state in grpcpool.connection.state. Its
// values and names are those of the pool's effective connection states
// (internal/core.State), in the same order, so ConnState(s) converts
// one; Closed, and anything past it, counts as draining.
type ConnState uint8

// The values of grpcpool.connection.state.
const (
	// ConnStarting: its first connection attempt has not ended.
	ConnStarting ConnState = iota
	// ConnReady: READY and serving; takes calls.
	ConnReady
	// ConnNotServing: READY, but health checking reports it not serving.
	ConnNotServing
	// ConnConnecting: connecting again after it was settled once.
	ConnConnecting
	// ConnFailing: its last connection attempt failed.
	ConnFailing
	// ConnDraining: retired, finishing its calls, taking no new ones.
	ConnDraining
	numConnStates
)

var connStateNames = [numConnStates]string{"starting", "ready", "not_serving", "connecting", "failing", "draining"}

// String returns "starting", "ready", "not_serving", "connecting",
// "failing" or "draining".
func (s ConnState) String() string { return connStateNames[connIndex(s)] }

func connIndex(s ConnState) ConnState {
	if s >= numConnStates {
		return ConnDraining
	}
	return s
}
