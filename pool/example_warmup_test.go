package pool_test

import (
	"context"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
)

// exampleSpread makes n unary calls through p and returns how many each
// server of bs received.
func exampleSpread(p *pool.Pool, bs []*backend.Server, n int) []int64 {
	client := echopb.NewEchoClient(p)
	before := exampleCounts(bs, nil)
	for range n {
		if _, err := client.Unary(context.Background(), &echopb.EchoRequest{}); err != nil {
			log.Fatal(err)
		}
	}
	return exampleCounts(bs, before)
}

// Every new connection makes a priming call on itself before it takes
// calls; a connection whose priming call fails, or takes over 2 s, stays
// out and tries again after a backoff.
func ExampleWithWarmup() {
	bs, stop := exampleBackends(2, false)
	defer stop()
	r, target := exampleResolver(exampleAddrs(bs)...)

	var warmups atomic.Int64
	warm := func(ctx context.Context, conn grpc.ClientConnInterface) error {
		warmups.Add(1)
		_, err := echopb.NewEchoClient(conn).Unary(ctx, &echopb.EchoRequest{Message: "warm-up"})
		return err
	}
	p, err := pool.New(target,
		pool.WithResolvers(r),
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
		pool.WithWarmup(warm, 2*time.Second),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	exampleWaitReady(p, len(bs))

	calls := exampleSpread(p, bs, 10)
	fmt.Println("warm-ups (2 backends × 2 connections):", warmups.Load())
	fmt.Println("calls per backend:", calls)
	for _, b := range p.Stats().Backends {
		fmt.Println("warm-up failures:", b.WarmupFailures)
	}
	// Output:
	// warm-ups (2 backends × 2 connections): 4
	// calls per backend: [5 5]
	// warm-up failures: 0
	// warm-up failures: 0
}
