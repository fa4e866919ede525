// Package lb is grpcpool's second door: the pool's decision core as a gRPC
// load-balancing policy, for code that must hand a library a plain
// *grpc.ClientConn (the OpenTelemetry OTLP exporters, Temporal, Dapr,
// go-plugin, …) or only dial options, and for xDS. Importing the package
// registers the policy under Name ("grpcpool"); a service config selects
// it:
//
//	import "github.com/grpcpool/grpcpool/lb"
//
//	cc, err := grpc.NewClient("dns:///collector.observability.svc:4317",
//		grpc.WithTransportCredentials(creds),
//		grpc.WithDefaultServiceConfig(lb.ServiceConfig(lb.Config{Size: 4, Policy: lb.LeastActive})),
//	)
//
// or, as JSON in a service config a resolver serves:
//
//	{"loadBalancingConfig": [{"grpcpool": {"size": 4, "policy": "least_active", "maxConnAge": "600s"}}]}
//
// An xDS control plane selects it with a Cluster's load_balancing_policy
// (gRFC A52): a TypedStruct whose type_url is
// "type.googleapis.com/grpcpool" and whose value is the same JSON object.
//
// # What carries over from the pool
//
// The policy drives the same core and the same pickers as pool.Pool, over
// SubConns instead of ClientConns: Size connections to every resolved
// address (behind one L4 address, Size connections that the balancer
// spreads over its backends); every pick policy (round_robin,
// least_active, peak_ewma, consistent_hash with the key from the call's
// outgoing metadata), with the resolver's weights (endpoint weights set
// with grpc's weight package, or pool.WithAddressWeight); a circuit
// breaker per backend fed by every call's outcome, with capped ejection;
// slow start; PeakEWMA fed by every call's latency, failures and
// grpc-retry-pushback-ms; re-resolution on a timer;
// connections replaced at MaxConnAge, the replacement ready before the
// old one drains; more connections when every one carries
// MaxStreamsPerConn; health checking by grpc's own healthCheckConfig
// ({"healthCheckConfig": {"serviceName": ""}} in the service config); and
// calls that fail at once with codes.Unavailable and the reason (no
// addresses, open breakers, backends not serving, connections failing,
// with the last connection error) — WaitForReady calls wait instead.
// grpc's own retryPolicy and hedgingPolicy keep working beside it.
//
// # What only the pool does
//
// A policy picks a SubConn per attempt and hears how the attempt ended;
// it sees nothing of the call around it. So these stay with pool.Pool:
//
//   - Retry on another backend: grpc's retryPolicy retries, but its next
//     attempt is picked afresh and may land on the same backend.
//   - Hedging on other backends (grpc's hedgingPolicy has the same limit).
//   - Max stream age, and a drain timeout that cuts what a retired
//     connection still carries: a policy cannot end a stream, and grpc
//     shuts a SubConn down gracefully.
//   - Learning a server's stream limit from stalled streams: set
//     MaxStreamsPerConn to it instead.
//   - Pool-level interceptors, Stats, metrics per backend, subsetting,
//     warm-up.
//   - Telling streams from unary calls: grpc does not tell a policy which
//     an RPC is. Every RPC counts as a call in flight until it ends, so
//     PeakEWMA learns a stream's whole life as its latency, and a stream
//     reports to its breaker only when it ends (a long stream holds a
//     half-open breaker's probe until then). Prefer least_active for
//     long-lived streams.
//
// A changed config (a new service config with different grpcpool
// settings) replaces every connection: calls wait for the new ones, and
// the old ones close once their calls end. grpc's channel idleness
// (grpc.WithIdleTimeout, 30 minutes by default) closes the policy and its
// connections after that long without calls; grpc.WithIdleTimeout(0)
// keeps them.
//
// The policy runs one goroutine per policy instance, none per connection.
package lb
