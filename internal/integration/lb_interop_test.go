package integration

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/lb"
)

// TestInteropThroughThePolicy runs grpc-go's interop client cases
// (google.golang.org/grpc/interop, the cases every gRPC implementation
// runs against every other) through a plain ClientConn whose policy is
// grpcpool, against three of grpc-go's interop test servers on loopback:
// unary calls large and empty, the three kinds of streams, deadlines,
// cancellation, metadata, status codes and messages, unimplemented
// methods and services. Each case runs several times, so it is placed on
// every backend. The interop cases end the process with a log message
// when they fail (grpclog's Fatal), as in grpc-go's own interop tests.
func TestInteropThroughThePolicy(t *testing.T) {
	var addrs []string
	for range 3 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(s, interop.NewTestServer())
		go func() { _ = s.Serve(lis) }()
		t.Cleanup(s.Stop)
		addrs = append(addrs, lis.Addr().String())
	}
	for _, c := range []lb.Config{
		{Size: 2, Policy: lb.LeastActive},
		{Size: 2, Policy: lb.PeakEWMA, Breaker: &lb.Breaker{}},
		{Size: 2, Policy: lb.ConsistentHash, HashKey: "x-user"},
	} {
		t.Run(c.Policy, func(t *testing.T) {
			r, target := testutil.ManualTarget(addrs...)
			cc := newClientConn(t, target, lb.ServiceConfig(c), grpc.WithResolvers(r))
			tc := testgrpc.NewTestServiceClient(cc)
			uc := testgrpc.NewUnimplementedServiceClient(cc)
			ctx := testutil.Context(t)
			for _, tcase := range []struct {
				name string
				run  func(context.Context)
			}{
				{"empty_unary", func(ctx context.Context) { interop.DoEmptyUnaryCall(ctx, tc) }},
				{"large_unary", func(ctx context.Context) { interop.DoLargeUnaryCall(ctx, tc) }},
				{"client_streaming", func(ctx context.Context) { interop.DoClientStreaming(ctx, tc) }},
				{"server_streaming", func(ctx context.Context) { interop.DoServerStreaming(ctx, tc) }},
				{"ping_pong", func(ctx context.Context) { interop.DoPingPong(ctx, tc) }},
				{"empty_stream", func(ctx context.Context) { interop.DoEmptyStream(ctx, tc) }},
				{"timeout_on_sleeping_server", func(ctx context.Context) { interop.DoTimeoutOnSleepingServer(ctx, tc) }},
				{"cancel_after_begin", func(ctx context.Context) { interop.DoCancelAfterBegin(ctx, tc) }},
				{"cancel_after_first_response", func(ctx context.Context) { interop.DoCancelAfterFirstResponse(ctx, tc) }},
				{"custom_metadata", func(ctx context.Context) { interop.DoCustomMetadata(ctx, tc) }},
				{"status_code_and_message", func(ctx context.Context) { interop.DoStatusCodeAndMessage(ctx, tc) }},
				{"special_status_message", func(ctx context.Context) { interop.DoSpecialStatusMessage(ctx, tc) }},
				{"unimplemented_method", func(ctx context.Context) { interop.DoUnimplementedMethod(ctx, cc) }},
				{"unimplemented_service", func(ctx context.Context) { interop.DoUnimplementedService(ctx, uc) }},
			} {
				t.Run(tcase.name, func(t *testing.T) {
					for range 6 {
						tcase.run(ctx)
					}
				})
			}
		})
	}
}
