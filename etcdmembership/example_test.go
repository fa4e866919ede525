package etcdmembership_test

import (
	"context"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcpool/grpcpool/etcdmembership"
	"github.com/grpcpool/grpcpool/pool"
)

// A backend registers its address and zone with etcd's naming package,
// under a lease; clients resolve "etcd:///services/greeter" through
// NewResolver, and each address the pool gets carries its zone. (The
// example needs an etcd at 127.0.0.1:2379, so it is compiled, not run.)
func ExampleNewResolver() {
	ctx := context.Background()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()

	// On the backend, in zone eu-west-1a.
	em, err := endpoints.NewManager(cli, "services/greeter")
	if err != nil {
		log.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 10)
	if err != nil {
		log.Fatal(err)
	}
	addr := "10.0.1.7:50051"
	err = em.AddEndpoint(ctx, "services/greeter/"+addr, endpoints.Endpoint{
		Addr:     addr,
		Metadata: etcdmembership.Metadata{Zone: "eu-west-1a"},
	}, clientv3.WithLease(lease.ID))
	if err != nil {
		log.Fatal(err)
	}
	keepAlive, err := cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for range keepAlive { // the etcd client needs its responses read
		}
	}()

	// On a client.
	p, err := pool.New("etcd:///services/greeter",
		pool.WithResolvers(etcdmembership.NewResolver(cli)),
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	// pb.NewGreeterClient(p).SayHello(ctx, ...)
}

// Each client joins its fleet with its zone; WatchZones reports how many
// of the fleet's clients run in each zone, the same counts on every
// client, which zone-aware routing needs to split the calls. (The example
// needs an etcd at 127.0.0.1:2379, so it is compiled, not run.)
func ExampleMembership_WatchZones() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := etcdmembership.Join(ctx, cli, "/fleets/checkout-clients/", etcdmembership.Options{Zone: "eu-west-1a"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	_ = m.WatchZones(ctx, func(clients map[string]int) {
		log.Printf("clients per zone: %v", clients) // map[eu-west-1a:12 eu-west-1b:9 eu-west-1c:10]
	})
}
