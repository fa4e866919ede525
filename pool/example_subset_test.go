package pool_test

import (
	"context"
	"fmt"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/pool"
)

// A fleet of 4 clients over 8 backends, each client connected to 4 of
// them: a client that knows its ordinal (a StatefulSet's pod number, a job
// index) passes it with the fleet's size; a fleet that coordinates through
// etcd uses the etcdmembership module instead.
func ExampleWithSubset() {
	bs, stop := exampleBackends(8, false)
	defer stop()
	r, target := exampleResolver(exampleAddrs(bs)...)

	const replicas = 4
	ordinal := 2 // this client's place, e.g. parsed from the pod's host name
	p, err := pool.New(target,
		pool.WithResolvers(r),
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
		pool.WithSubset(4, pool.StaticMembership(ordinal, replicas)),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	exampleWaitReady(p, 4)

	if _, err := echopb.NewEchoClient(p).Unary(context.Background(), &echopb.EchoRequest{}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("backends used:", len(p.Stats().Backends), "of", len(bs))
	// Output:
	// backends used: 4 of 8
}
