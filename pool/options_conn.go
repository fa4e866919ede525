package pool

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/keepalive"
)

// Options for the pool's connections: how they are dialed, resolved,
// recycled, drained, kept alive and health-checked.

// WithDialOptions adds options to every connection the pool makes:
// credentials, interceptors, stats handlers, a custom dialer and so on. The
// pool adds grpc.WithResolvers and a connection-scoped default of
// grpc.WithIdleTimeout(0) (pool connections stay connected); options given
// here come after the pool's defaults and so override them. Without
// transport credentials New fails, as grpc.NewClient does.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return optionFunc(func(o *options) {
		for i, d := range opts {
			if d == nil {
				o.fail("WithDialOptions: option %d is nil", i)
				return
			}
		}
		o.dialOpts = append(o.dialOpts, opts...)
	})
}

// WithResolvers adds resolver builders that are used for the target ahead of
// the globally registered ones, as grpc.WithResolvers does. A builder for
// the "dns" scheme replaces the pool's own DNS resolver.
func WithResolvers(rs ...resolver.Builder) Option {
	return optionFunc(func(o *options) {
		for i, r := range rs {
			if isNil(r) {
				o.fail("WithResolvers: builder %d is nil", i)
				return
			}
		}
		o.resolvers = append(o.resolvers, rs...)
	})
}

// WithResolveInterval sets how often the pool asks its resolver to resolve
// the target again, so a fleet behind DNS is followed even when no
// connection breaks. Each wait is jittered by ±10 %. Default 30 s
// (DefaultResolveInterval); 0 turns periodic re-resolution off (the pool
// still re-resolves when a connection fails). Values below 100 ms are raised
// to 100 ms; negative values make New fail.
func WithResolveInterval(d time.Duration) Option {
	return optionFunc(func(o *options) {
		if d < 0 {
			o.fail("WithResolveInterval(%v): must not be negative", d)
			return
		}
		if d > 0 && d < MinResolveInterval {
			d = MinResolveInterval
		}
		o.resolveInterval = d
	})
}

// WithMaxConnAge replaces every connection after d (±10 % jitter): a
// replacement is made ready first, then the old connection stops taking new
// calls and closes when its calls end (see WithDrainTimeout). At most one
// connection per backend is replaced at a time. Behind a single virtual IP
// this is what moves connections onto backends added behind it. Default 0:
// connections are not recycled. Negative values make New fail.
func WithMaxConnAge(d time.Duration) Option {
	return durationOption("WithMaxConnAge", d, func(o *options) { o.maxConnAge = d })
}

// WithDrainTimeout bounds how long a retired connection (recycled, idle, or
// of a removed address) may keep carrying its in-flight calls and streams;
// when it passes, the connection is closed and what it still carries fails.
// Default 15 minutes (DefaultDrainTimeout), so an abandoned stream cannot
// keep a retired connection for ever. 0 means no limit: nothing in flight
// is ever cut by a drain, at the cost of keeping an old connection for as
// long as its longest stream lives. Negative values make New fail.
func WithDrainTimeout(d time.Duration) Option {
	return durationOption("WithDrainTimeout", d, func(o *options) { o.drainTimeout = d })
}

// WithMaxStreamAge ends every stream older than d (±10 % jitter) with
// codes.Unavailable and a message saying it was ended to rebalance, so a
// caller that opens it again lands on the least-loaded backend. Default 0:
// streams are never ended by the pool. Negative values make New fail.
func WithMaxStreamAge(d time.Duration) Option {
	return durationOption("WithMaxStreamAge", d, func(o *options) { o.maxStreamAge = d })
}

// WithKeepalive applies the client side of a keepalive.Config to every
// connection; configure servers with the same Config's ServerOptions. The
// zero Config means keepalive's documented defaults. Default: gRPC's own
// (no keepalive pings).
func WithKeepalive(c keepalive.Config) Option {
	return optionFunc(func(o *options) {
		if err := c.Validate(); err != nil {
			o.fail("WithKeepalive: %v", err)
			return
		}
		o.keepalive = &c
	})
}

// WithHealthCheck watches the grpc.health.v1 service on every connection,
// for serviceName ("" is the server as a whole): a connection whose server
// reports NOT_SERVING or UNKNOWN takes no new calls until it reports
// SERVING again; calls it carries finish. Servers without the health
// service (Unimplemented) are treated as serving, with a debug log. A
// READY connection whose server sends no first report within
// DefaultHealthTimeout (10 s) counts as not serving, and calls say so,
// until a report comes. Default: no health checking.
func WithHealthCheck(serviceName string) Option {
	return optionFunc(func(o *options) {
		o.healthService = &serviceName
	})
}

// WithStreamStallTimeout sets how long a NewStream may wait on a connection
// that carries other streams before the pool gives it up and places it on
// another connection. A stall is evidence of the server's
// MAX_CONCURRENT_STREAMS: when two stalls on a backend come at the same
// number of open streams, that number becomes the backend's stream limit
// per connection (see WithMaxStreamsPerConn) for five minutes, after which
// it is learned again. Only a NewStream given up while it waited for the
// connection's stream quota is a stall: one held up before that (a slow
// per-RPC credentials fetch, an interceptor) is placed elsewhere but
// teaches nothing, and one slow NewStream alone (a reconnect) teaches
// nothing either. Default 500 ms (DefaultStreamStallTimeout);
// 0 turns stall handling and learning off. Negative values make New fail.
func WithStreamStallTimeout(d time.Duration) Option {
	return durationOption("WithStreamStallTimeout", d, func(o *options) { o.learnStreamLimit = d })
}
