package pool

import "errors"

// Errors returned by New. They are wrapped with details; test with errors.Is.
var (
	// ErrInvalidTarget: the target is empty or cannot be parsed.
	ErrInvalidTarget = errors.New("grpcpool: invalid target")
	// ErrUnknownScheme: no resolver is registered or given for the target's scheme.
	ErrUnknownScheme = errors.New("grpcpool: unknown resolver scheme")
	// ErrInvalidOption: an option was nil or out of its valid range.
	ErrInvalidOption = errors.New("grpcpool: invalid option")
)

// Messages of the statuses calls fail with when the pool cannot place them.
// Calls fail with codes.Canceled after Close, and with codes.Unavailable when
// no backend can take them; the message says why.
const (
	msgClosed       = "grpcpool: pool is closed"
	msgNoAddresses  = "grpcpool: no addresses resolved for target"
	msgAllOpen      = "grpcpool: all backends have open circuit breakers"
	msgNotReady     = "grpcpool: no ready connection"
	msgStreamMaxAge = "grpcpool: stream ended after its max age to rebalance; open it again"
)
