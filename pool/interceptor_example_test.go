package pool_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// A pool-level interceptor runs once per logical call, around picking and
// retries; one given with WithDialOptions runs on the chosen connection,
// once per attempt. Here the server fails every other attempt with
// UNAVAILABLE, so each call takes two attempts.
func ExampleWithUnaryInterceptor() {
	var received atomic.Int64
	lis := bufconn.Listen(1 << 20)
	srv := backend.Start(lis, backend.Options{ServerOptions: []grpc.ServerOption{
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if received.Add(1)%2 == 1 {
				return nil, status.Error(codes.Unavailable, "try again")
			}
			return h(ctx, req)
		}),
	}})
	defer srv.Stop()

	var calls, attempts atomic.Int64
	perCall := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		calls.Add(1) // cc is nil: the pool is not a *grpc.ClientConn
		err := invoker(ctx, method, req, reply, cc, opts...)
		fmt.Printf("call %s: %v (cc nil: %t)\n", method, status.Code(err), cc == nil)
		return err
	}
	perAttempt := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		attempts.Add(1)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	p, err := pool.New("passthrough:///bufnet",
		pool.WithSize(1),
		pool.WithRetry(retry.Policy{}),
		pool.WithUnaryInterceptor(perCall),
		pool.WithDialOptions(
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(perAttempt),
		))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := echopb.NewEchoClient(p)
	for range 3 {
		if _, err := client.Unary(ctx, &echopb.EchoRequest{Message: "hi"}); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("pool-level interceptor: %d calls; dial-option interceptor: %d attempts\n", calls.Load(), attempts.Load())
	// Output:
	// call /grpcpool.example.echo.v1.Echo/Unary: OK (cc nil: true)
	// call /grpcpool.example.echo.v1.Echo/Unary: OK (cc nil: true)
	// call /grpcpool.example.echo.v1.Echo/Unary: OK (cc nil: true)
	// pool-level interceptor: 3 calls; dial-option interceptor: 6 attempts
}

// A pool-level stream interceptor runs once per stream, before the pool
// picks a backend for it: here it adds a header every stream carries.
func ExampleWithStreamInterceptor() {
	lis := bufconn.Listen(1 << 20)
	srv := backend.Start(lis, backend.Options{ServerOptions: []grpc.ServerOption{
		grpc.StreamInterceptor(func(s any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			md, _ := metadata.FromIncomingContext(ss.Context())
			fmt.Printf("server: %s with tenant %v\n", info.FullMethod, md.Get("tenant"))
			return h(s, ss)
		}),
	}})
	defer srv.Stop()

	tenant := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(metadata.AppendToOutgoingContext(ctx, "tenant", "blue"), desc, cc, method, opts...)
	}
	p, err := pool.New("passthrough:///bufnet",
		pool.WithSize(1),
		pool.WithStreamInterceptor(tenant),
		pool.WithDialOptions(
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
		))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := echopb.NewEchoClient(p).Bidi(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := stream.Send(&echopb.EchoRequest{Message: "hi"}); err != nil {
		log.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("client:", resp.GetMessage())
	if err := stream.CloseSend(); err != nil {
		log.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		log.Fatal(err)
	}
	// Output:
	// server: /grpcpool.example.echo.v1.Echo/Bidi with tenant [blue]
	// client: hi
}
