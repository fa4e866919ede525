package server_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcpool/grpcpool/server"
)

// A server that registers the health service and, on shutdown (SIGTERM in
// a real program: signal.NotifyContext), stops in the order that lets
// health-checking pools move away first.
func ExampleGracefulStop() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	s := grpc.NewServer()
	hs := health.NewServer() // "" is SERVING
	healthpb.RegisterHealthServer(s, hs)
	// ... register the application's services on s ...
	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()

	// Shutting down: clients get NOT_SERVING, have 200ms to move their new
	// calls elsewhere, then GracefulStop lets the calls in flight finish.
	// Whatever is still running after 10s is cut.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = server.GracefulStop(ctx, s, hs, 200*time.Millisecond)
	fmt.Println("graceful stop:", err)
	fmt.Println("serve:", <-served)
	// Output:
	// graceful stop: <nil>
	// serve: <nil>
}
