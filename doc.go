// Package grpcpool is a gRPC client connection pool for Go.
//
// gRPC runs on HTTP/2, which multiplexes every call of a client over one TCP
// connection, so a connection-level balancer (a Kubernetes ClusterIP, a cloud
// L4 load balancer, haproxy in tcp mode) pins all of a client's calls, and
// above all its long-lived streams, to one backend. grpcpool balances per
// call and per stream across several connections to every address the
// target resolves to, and keeps the spread as backends come, go, slow down
// or fail.
//
// The pool lives in package [github.com/grpcpool/grpcpool/pool]; it
// implements grpc.ClientConnInterface, so any generated client takes it:
//
//	p, err := pool.New("dns:///greeter.prod.svc:50051",
//		pool.WithSize(4),
//		pool.WithPolicy(pool.LeastActive),
//		pool.WithDialOptions(grpc.WithTransportCredentials(creds)),
//		pool.WithMaxConnAge(10*time.Minute),
//		pool.WithBreaker(breaker.Settings{}),
//		pool.WithRetry(retry.Policy{}),
//		pool.WithKeepalive(keepalive.Config{}),
//	)
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//	client := pb.NewGreeterClient(p)
//
// The other packages configure it:
//
//   - [github.com/grpcpool/grpcpool/breaker]: per-backend circuit breakers
//     and which gRPC outcomes count as failures;
//   - [github.com/grpcpool/grpcpool/retry]: retry policy, backoff with
//     jitter, and the retry budget that keeps a failing fleet from a retry
//     storm;
//   - [github.com/grpcpool/grpcpool/keepalive]: one config that yields
//     matching client and server keepalive options.
//
// The docs/ directory of the repository covers design, tuning, operations
// and measured comparisons with grpc-go's own balancers.
package grpcpool
