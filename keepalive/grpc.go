package keepalive

import (
	"google.golang.org/grpc"
	grpckeepalive "google.golang.org/grpc/keepalive"
)

// ClientParameters returns the client keepalive parameters of c (see
// [Config.WithDefaults]): Time (at least MinPingTime), Timeout, and
// PermitWithoutStream = !NoPingsWithoutStream.
func (c Config) ClientParameters() grpckeepalive.ClientParameters {
	c = c.WithDefaults()
	return grpckeepalive.ClientParameters{
		Time:                c.Time,
		Timeout:             c.Timeout,
		PermitWithoutStream: !c.NoPingsWithoutStream,
	}
}

// ServerParameters returns the server keepalive parameters of c: the
// MaxConnection* fields as set (zero means infinity). The server's own ping
// interval and timeout (ServerParameters.Time and Timeout) are left zero, so
// grpc-go's defaults apply (2h and 20s); with clients pinging every
// Config.Time the server rarely needs to ping on its own.
func (c Config) ServerParameters() grpckeepalive.ServerParameters {
	c = c.WithDefaults()
	return grpckeepalive.ServerParameters{
		MaxConnectionIdle:     c.MaxConnectionIdle,
		MaxConnectionAge:      c.MaxConnectionAge,
		MaxConnectionAgeGrace: c.MaxConnectionAgeGrace,
	}
}

// EnforcementPolicy returns the server keepalive enforcement policy that
// accepts the pings of a client configured with c: MinTime is half of the
// client's effective ping interval (so at least MinPingTime/2 = 5s, never
// zero, which grpc-go would read as 5 minutes), and PermitWithoutStream
// matches the client's.
//
// The client never pings sooner than Time after its last read, so pings
// arrive at least Time apart; half of it is the safety margin for timer and
// scheduling delays.
func (c Config) EnforcementPolicy() grpckeepalive.EnforcementPolicy {
	c = c.WithDefaults()
	return grpckeepalive.EnforcementPolicy{
		MinTime:             c.Time / 2,
		PermitWithoutStream: !c.NoPingsWithoutStream,
	}
}

// DialOption returns grpc.WithKeepaliveParams(c.ClientParameters()), the
// client half of the pairing, for grpc.NewClient or pool.WithDialOptions.
func (c Config) DialOption() grpc.DialOption {
	return grpc.WithKeepaliveParams(c.ClientParameters())
}

// ServerOptions returns the server half of the pairing, for grpc.NewServer:
// grpc.KeepaliveParams(c.ServerParameters()) and
// grpc.KeepaliveEnforcementPolicy(c.EnforcementPolicy()). It returns a new
// slice on every call.
func (c Config) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveParams(c.ServerParameters()),
		grpc.KeepaliveEnforcementPolicy(c.EnforcementPolicy()),
	}
}
