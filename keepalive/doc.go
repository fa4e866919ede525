// Package keepalive derives matching gRPC keepalive settings for both ends of
// a connection from one [Config].
//
// # The failure it prevents
//
// gRPC keepalive has two halves that are configured separately: the client
// pings an idle connection every [google.golang.org/grpc/keepalive.ClientParameters.Time],
// and the server enforces a minimum interval between pings with
// [google.golang.org/grpc/keepalive.EnforcementPolicy.MinTime] (5 minutes when
// left unset). A grpc-go server counts a "ping strike" for every ping that
// arrives sooner than MinTime after the previous one — or, if its policy does
// not permit pings without streams, for any ping on a connection with no
// active RPC. Strikes are forgiven only when the server sends headers or
// data; at the third strike it sends
//
//	GOAWAY ENHANCE_YOUR_CALM "too_many_pings"
//
// and closes the connection. A pool keeps idle, warm connections and wants
// to ping them so dead ones are noticed; against a server with default
// settings such a client loses every connection after a few pings, and then
// reconnects with its ping interval doubled. The mismatch shows up as
// unexplained reconnects, failed streams and ResourceExhausted errors.
//
// # The pairing
//
// Build both ends from the same Config:
//
//	cfg := keepalive.Config{Time: 20 * time.Second}
//
//	srv := grpc.NewServer(cfg.ServerOptions()...)              // server side
//	p, err := pool.New(target, pool.WithKeepalive(cfg))        // client side, a pool
//	cc, err := grpc.NewClient(target, creds, cfg.DialOption()) // or a ClientConn
//
// The server's EnforcementPolicy.MinTime is half of the client's effective
// ping interval, and both ends agree on whether pings without active streams
// are allowed, so the pings the client sends never count as strikes. The
// halving leaves room for timer and scheduling jitter: a grpc-go client never
// pings sooner than Time after it last read from the connection.
//
// A server may serve clients with different configurations; give it the
// Config with the shortest Time among them (a smaller MinTime only makes the
// server more permissive).
package keepalive
