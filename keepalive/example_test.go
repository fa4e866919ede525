package keepalive_test

import (
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcpool/grpcpool/keepalive"
)

// Both ends are configured from the same Config: the server with
// ServerOptions, the client with DialOption (a pool takes the Config itself,
// with pool.WithKeepalive).
func ExampleConfig() {
	cfg := keepalive.Config{Time: 20 * time.Second}
	if err := cfg.Validate(); err != nil {
		log.Fatal(err)
	}

	// Server side.
	srv := grpc.NewServer(cfg.ServerOptions()...)
	defer srv.Stop()

	// Client side. NewClient does no I/O; connections are made on first use.
	cc, err := grpc.NewClient("dns:///greeter.example:50051",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		cfg.DialOption(),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()

	cp := cfg.ClientParameters()
	ep := cfg.EnforcementPolicy()
	fmt.Printf("client pings after %v idle, waits %v for the ack, also without streams: %v\n",
		cp.Time, cp.Timeout, cp.PermitWithoutStream)
	fmt.Printf("server accepts a ping every %v, also without streams: %v\n",
		ep.MinTime, ep.PermitWithoutStream)
	// Output:
	// client pings after 20s idle, waits 10s for the ack, also without streams: true
	// server accepts a ping every 10s, also without streams: true
}

// The zero value means the documented defaults.
func ExampleConfig_zeroValue() {
	var cfg keepalive.Config
	cp := cfg.ClientParameters()
	ep := cfg.EnforcementPolicy()
	sp := cfg.ServerParameters()
	fmt.Println("client:", cp.Time, cp.Timeout, cp.PermitWithoutStream)
	fmt.Println("server policy:", ep.MinTime, ep.PermitWithoutStream)
	fmt.Println("server max idle, age, grace (0 = infinity):", sp.MaxConnectionIdle, sp.MaxConnectionAge, sp.MaxConnectionAgeGrace)
	// Output:
	// client: 30s 10s true
	// server policy: 15s true
	// server max idle, age, grace (0 = infinity): 0s 0s 0s
}

// grpc-go does not let a client ping more often than every 10s. Config
// applies the same clamp, so the server's policy matches the interval the
// client really uses.
func ExampleConfig_WithDefaults() {
	cfg := keepalive.Config{Time: 2 * time.Second}
	fmt.Println("effective Time:", cfg.WithDefaults().Time)
	fmt.Println("client Time:", cfg.ClientParameters().Time)
	fmt.Println("server MinTime:", cfg.EnforcementPolicy().MinTime)
	// Output:
	// effective Time: 10s
	// client Time: 10s
	// server MinTime: 5s
}

func ExampleConfig_Validate() {
	cfg := keepalive.Config{Timeout: -time.Second}
	err := cfg.Validate()
	fmt.Println(err)
	// Output:
	// keepalive: negative duration: Timeout = -1s
}
