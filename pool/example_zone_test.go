package pool_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/pool"
)

// A client in zone us-east-1b keeps its calls there: its zone holds a
// third of the backends and, by default, a third of the clients. The
// resolver records each backend's zone (WithAddressZone); where it cannot,
// WithZonesByCIDR maps subnets to zones.
func ExampleWithZone() {
	p, stop := exampleZonedPool(
		pool.WithZone("us-east-1b"),
		pool.WithZonesByCIDR(map[string]string{"10.0.0.0/20": "us-east-1a", "10.0.16.0/20": "us-east-1b"}),
	)
	defer stop()
	// Until us-east-1b's backend is ready, its calls spill to the others:
	// wait for it, so that the output does not depend on which came first.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if st := p.Stats(); st.LocalShare == 1 && len(st.Backends) == 3 && st.Backends[1].Ready > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}

	served := map[string]int{}
	for range 30 {
		resp, err := echopb.NewEchoClient(p).Unary(ctx, &echopb.EchoRequest{})
		if err != nil {
			log.Fatal(err)
		}
		served[resp.GetBackend()]++
	}
	st := p.Stats()
	fmt.Printf("local share %.0f%%, calls per backend %v\n", 100*st.LocalShare, served)
	// Output:
	// local share 100%, calls per backend map[b1:30]
}

// With fewer ready backends than WithZoneMinBackends (Envoy's
// min_cluster_size, 6 there), calls are spread over every backend
// whatever its zone: the client in us-east-1b keeps a third of its calls,
// its backend's share of the three.
func ExampleWithZoneMinBackends() {
	p, stop := exampleZonedPool(pool.WithZone("us-east-1b"), pool.WithZoneMinBackends(6))
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil { // every backend ready: the share no longer moves
		ready := 0
		for _, b := range p.Stats().Backends {
			if b.Ready > 0 {
				ready++
			}
		}
		if ready == 3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("local share %.1f%%\n", 100*p.Stats().LocalShare)
	// Output:
	// local share 33.3%
}

// exampleZonedPool starts three backends, b0 to b2, whose resolver records
// their zones, us-east-1a to us-east-1c, and a pool over them with opts;
// stop closes both.
func exampleZonedPool(opts ...pool.Option) (*pool.Pool, func()) {
	bs, stopBackends := exampleBackends(3, false)
	addrs := exampleAddrs(bs)
	for i, zone := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
		addrs[i] = pool.WithAddressZone(addrs[i], zone)
	}
	r, target := exampleResolver(addrs...)
	p, err := pool.New(target, append([]pool.Option{
		pool.WithResolvers(r),
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}, opts...)...)
	if err != nil {
		log.Fatal(err)
	}
	return p, func() {
		_ = p.Close()
		stopBackends()
	}
}
