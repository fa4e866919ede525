package lb_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/tcpproxy"
	"github.com/grpcpool/grpcpool/lb"
)

// Three backends behind one L4 load-balancer address (an in-process TCP
// proxy standing in for a cloud load balancer, a Kubernetes ClusterIP or
// haproxy in mode tcp). A plain *grpc.ClientConn with the policy keeps six
// connections to the address, which the balancer spreads over the
// backends, and least_active spreads long-lived streams over those.
//
// Any library that takes a *grpc.ClientConn gets the spread. The OTLP
// trace exporter, say, behind a load balancer in front of a fleet of
// collectors:
//
//	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithGRPCConn(cc))
//
// (internal/integration's TestOTLPExporterBehindOneAddressReachesEveryCollector
// runs that against collectors behind haproxy; docs/lb.md shows it.)
func Example_behindOneAddress() {
	var addrs []string
	names := map[string]string{}
	for i := range 3 {
		s, err := backend.Listen(backend.Options{Name: fmt.Sprint("backend-", i)})
		if err != nil {
			log.Fatal(err)
		}
		defer s.Stop()
		addrs = append(addrs, s.Addr())
		names[s.Addr()] = s.Name()
	}
	proxy, err := tcpproxy.New(addrs...) // one address, round-robin per connection
	if err != nil {
		log.Fatal(err)
	}
	defer proxy.Close()

	cc, err := grpc.NewClient("passthrough:///"+proxy.Addr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(lb.ServiceConfig(lb.Config{Size: 6, Policy: lb.LeastActive})),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	cc.Connect() // grpc.NewClient connects on the first call otherwise

	// The balancer holds the policy's six connections, two to a backend.
	for deadline := time.Now().Add(10 * time.Second); total(proxy.Conns()) < 6; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatalf("connections through the proxy: %v", proxy.Conns())
		}
	}
	for _, a := range addrs {
		fmt.Printf("%s: %d connections\n", names[a], proxy.Conns()[a])
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := echopb.NewEchoClient(cc)
	perBackend := map[string]int{}
	for range 60 {
		s, err := client.Bidi(ctx, grpc.WaitForReady(true))
		if err != nil {
			log.Fatal(err)
		}
		if err := s.Send(&echopb.EchoRequest{Message: "hi"}); err != nil {
			log.Fatal(err)
		}
		resp, err := s.Recv()
		if err != nil {
			log.Fatal(err)
		}
		perBackend[resp.GetBackend()]++ // the stream stays open
	}
	for i := range 3 {
		name := fmt.Sprint("backend-", i)
		fmt.Printf("%s: %d streams\n", name, perBackend[name])
	}
	// Output:
	// backend-0: 2 connections
	// backend-1: 2 connections
	// backend-2: 2 connections
	// backend-0: 20 streams
	// backend-1: 20 streams
	// backend-2: 20 streams
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// The JSON a service config carries, as a resolver, a control plane or
// grpc.WithDefaultServiceConfig gives it; durations as gRPC writes them.
func ExampleServiceConfig() {
	fmt.Println(lb.ServiceConfig(lb.Config{
		Size:       4,
		Policy:     lb.LeastActive,
		MaxConnAge: 10 * 60e9, // ten minutes
		Breaker:    &lb.Breaker{},
	}))
	// Output:
	// {"loadBalancingConfig":[{"grpcpool":{"size":4,"policy":"least_active","maxConnAge":"600s","breaker":{}}}]}
}

// Zone-aware routing in a service config: the client's zone, the zones
// of the backends by subnet, and the fleet's clients per zone, which
// whoever writes the config knows (a ClientConn has no membership to ask).
func ExampleServiceConfig_zones() {
	fmt.Println(lb.ServiceConfig(lb.Config{
		Zone:        "us-east-1a",
		ZonesByCIDR: map[string]string{"10.0.0.0/20": "us-east-1a", "10.0.16.0/20": "us-east-1b"},
		ZoneClients: map[string]int{"us-east-1a": 12, "us-east-1b": 30},
	}))
	// Output:
	// {"loadBalancingConfig":[{"grpcpool":{"zone":"us-east-1a","zonesByCidr":{"10.0.0.0/20":"us-east-1a","10.0.16.0/20":"us-east-1b"},"zoneClients":{"us-east-1a":12,"us-east-1b":30}}}]}
}
