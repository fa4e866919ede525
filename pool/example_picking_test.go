package pool_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/pool"
)

// PeakEWMA hears how every call went: a backend that starts failing every
// call at once gets its first failure, which counts as a 5 s latency, and
// then (almost) nothing. LeastActive and round-robin would keep sending it
// a quarter of the calls.
func ExamplePeakEWMA() {
	bs, stop := exampleBackends(4, false)
	defer stop()
	r, target := exampleResolver(exampleAddrs(bs)...)
	p, err := pool.New(target, pool.WithResolvers(r), pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
		pool.WithPolicy(pool.PeakEWMA),
		pool.WithSlowStart(30*time.Second)) // a backend added later ramps up over 30 s
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	exampleWaitReady(p, len(bs))

	bs[0].SetFail(codes.Unavailable)
	c := echopb.NewEchoClient(p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	failed := 0
	for range 200 {
		if _, err := c.Unary(ctx, &echopb.EchoRequest{}); err != nil {
			failed++
		}
	}
	fmt.Println("of 200 calls, fewer than 5 failed:", failed < 5)
	// Output:
	// of 200 calls, fewer than 5 failed: true
}
