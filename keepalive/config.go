package keepalive

import (
	"errors"
	"fmt"
	"time"
)

// Defaults used for the zero fields of a [Config], and the clamp applied to
// [Config.Time].
const (
	// DefaultTime is the default client ping interval: a client pings a
	// connection after it has read nothing from it for this long.
	DefaultTime = 30 * time.Second

	// DefaultTimeout is the default time a client waits for a ping
	// acknowledgement (or any other read) before it closes the connection.
	DefaultTimeout = 10 * time.Second

	// MinPingTime is the shortest client ping interval grpc-go allows:
	// grpc.WithKeepaliveParams raises a smaller ClientParameters.Time to this
	// value. Config applies the same clamp before it derives the server's
	// enforcement policy, so both ends agree on the interval actually used.
	MinPingTime = 10 * time.Second
)

// ErrNegativeDuration is returned (wrapped, naming the field) by
// [Config.Validate] for a negative duration. Test for it with [errors.Is].
var ErrNegativeDuration = errors.New("keepalive: negative duration")

// Config holds the keepalive settings of both ends of a gRPC connection. The
// client settings ([Config.ClientParameters], [Config.DialOption]) and the
// server settings ([Config.ServerParameters], [Config.EnforcementPolicy],
// [Config.ServerOptions]) derived from the same Config always agree, so the
// server never answers the client's pings with GOAWAY "too_many_pings".
//
// The zero value is ready to use and means the documented defaults.
// Negative durations are invalid: [Config.Validate] reports them, and the
// methods that compute settings treat them as zero (the default).
//
// Config is a plain value; its methods do not modify it and are safe for
// concurrent use.
type Config struct {
	// Time is the client ping interval: after reading nothing from a
	// connection for Time, the client sends a keepalive ping.
	//
	// Default (zero): DefaultTime (30s). grpc-go does not allow pings more
	// often than every 10s: a value below MinPingTime (10s) is raised to
	// MinPingTime, here and in the server policy derived from it.
	Time time.Duration

	// Timeout is how long the client waits, after a ping, for the ack (or
	// any other read) before it closes the connection as dead. It is also
	// set as the client socket's TCP_USER_TIMEOUT on Linux.
	//
	// Default (zero): DefaultTimeout (10s).
	Timeout time.Duration

	// NoPingsWithoutStream stops the client from pinging connections that
	// have no active RPC, and makes the server treat such pings as
	// violations.
	//
	// Default (false): pings are sent, and allowed, also when no RPC is
	// active. A pool keeps idle, warm connections and must find out that one
	// is dead before it hands it a call, so pinging idle connections is the
	// default.
	NoPingsWithoutStream bool

	// MaxConnectionIdle makes the server close a connection, with a graceful
	// GOAWAY, once it has had no active RPC for this long.
	//
	// Default (zero): infinity, the connection is never closed for being
	// idle. A pool keeps warm connections on purpose; a server closing them
	// only forces re-dials on the next burst of calls. Set it when the
	// server must shed connections of clients that went away quietly.
	MaxConnectionIdle time.Duration

	// MaxConnectionAge makes the server close a connection, with a graceful
	// GOAWAY, after it has existed this long (grpc-go adds ±10% jitter).
	//
	// Default (zero): infinity. A pool recycles its own connections with
	// pool.WithMaxConnAge, making the replacement ready first; prefer that
	// when the clients are pools.
	MaxConnectionAge time.Duration

	// MaxConnectionAgeGrace is how long the server lets RPCs in flight
	// finish after MaxConnectionAge before it closes the connection by force.
	//
	// Default (zero): infinity, in-flight RPCs are never cut.
	MaxConnectionAgeGrace time.Duration
}

// Validate reports every negative duration in c, each wrapping
// [ErrNegativeDuration] and naming its field, joined with [errors.Join]. It
// returns nil for any Config without negative durations, including the zero
// value.
func (c Config) Validate() error {
	var errs []error
	check := func(name string, d time.Duration) {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%w: %s = %v", ErrNegativeDuration, name, d))
		}
	}
	check("Time", c.Time)
	check("Timeout", c.Timeout)
	check("MaxConnectionIdle", c.MaxConnectionIdle)
	check("MaxConnectionAge", c.MaxConnectionAge)
	check("MaxConnectionAgeGrace", c.MaxConnectionAgeGrace)
	return errors.Join(errs...)
}

// WithDefaults returns the effective configuration, the one every other
// method computes its settings from: negative durations are replaced by zero,
// a zero Time or Timeout by DefaultTime or DefaultTimeout, and a Time below
// MinPingTime is raised to MinPingTime. The server durations keep zero,
// which means infinity.
func (c Config) WithDefaults() Config {
	c.Time = max(c.Time, 0)
	c.Timeout = max(c.Timeout, 0)
	c.MaxConnectionIdle = max(c.MaxConnectionIdle, 0)
	c.MaxConnectionAge = max(c.MaxConnectionAge, 0)
	c.MaxConnectionAgeGrace = max(c.MaxConnectionAgeGrace, 0)

	if c.Time == 0 {
		c.Time = DefaultTime
	}
	c.Time = max(c.Time, MinPingTime)
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}
