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
	bs, stop := exampleBackends(3, false)
	defer stop()
	addrs := exampleAddrs(bs)
	for i, zone := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
		addrs[i] = pool.WithAddressZone(addrs[i], zone)
	}
	r, target := exampleResolver(addrs...)
	p, err := pool.New(target,
		pool.WithResolvers(r),
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
		pool.WithZone("us-east-1b"),
		pool.WithZonesByCIDR(map[string]string{"10.0.0.0/20": "us-east-1a", "10.0.16.0/20": "us-east-1b"}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
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
