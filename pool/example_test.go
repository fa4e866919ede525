package pool_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// The examples run against Echo servers on loopback. A real program gives
// New a target such as "dns:///greeter.prod.svc:50051"; here a manual
// resolver reports the local servers' addresses.

// exampleBackends starts n Echo servers named b0, b1, … (with the health
// service when health is true), and returns them with a function that
// stops them all.
func exampleBackends(n int, health bool) ([]*backend.Server, func()) {
	var bs []*backend.Server
	for i := range n {
		s, err := backend.Listen(backend.Options{Name: fmt.Sprintf("b%d", i), Health: health})
		if err != nil {
			log.Fatal(err)
		}
		bs = append(bs, s)
	}
	return bs, func() {
		for _, s := range bs {
			s.Stop()
		}
	}
}

// exampleResolver returns a resolver that reports addrs, under a scheme of
// its own, and a target for it.
func exampleResolver(addrs ...resolver.Address) (*manual.Resolver, string) {
	r := testutil.NewScheme("example")
	r.InitialState(resolver.State{Addresses: addrs})
	return r, r.Scheme() + ":///echo.example:50051"
}

func exampleAddrs(bs []*backend.Server) []resolver.Address {
	var out []resolver.Address
	for _, b := range bs {
		out = append(out, resolver.Address{Addr: b.Addr()})
	}
	return out
}

// exampleWaitReady waits until every one of the pool's n backends can take
// calls, so that the examples' output does not depend on which connection
// was up first. Real programs need not do this: calls placed while
// connections are coming up go to those that are ready.
func exampleWaitReady(p *pool.Pool, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitForReady(ctx); err != nil {
		log.Fatal(err)
	}
	for ctx.Err() == nil {
		st, ready := p.Stats(), 0
		for _, b := range st.Backends {
			if b.Ready > 0 && b.Connecting == 0 && b.Healthy {
				ready++
			}
		}
		if ready == n {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Stats counts a connection a moment before calls can pick it: make
	// sure calls reach all n.
	seen := map[string]bool{}
	for len(seen) < n && ctx.Err() == nil {
		r, err := echopb.NewEchoClient(p).Unary(ctx, &echopb.EchoRequest{})
		if err != nil {
			log.Fatal(err)
		}
		seen[r.Backend] = true
	}
}

// exampleCounts returns the unary calls each server received since since (nil:
// since it started).
func exampleCounts(bs []*backend.Server, since []int64) []int64 {
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.Unary()
		if since != nil {
			out[i] -= since[i]
		}
	}
	return out
}

// A pool used as a grpc.ClientConnInterface by a generated client: calls
// are spread over every backend the target resolves to.
func ExampleNew() {
	bs, stop := exampleBackends(3, false)
	defer stop()
	r, target := exampleResolver(exampleAddrs(bs)...)

	p, err := pool.New(target,
		pool.WithResolvers(r), // not needed for dns:///, unix:// and the like
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
		pool.WithSize(2),                    // connections per backend
		pool.WithPolicy(pool.RoundRobin),    // the default
		pool.WithMaxConnAge(10*time.Minute), // recycle, draining gracefully
	)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	exampleWaitReady(p, len(bs))

	client := echopb.NewEchoClient(p)
	before := exampleCounts(bs, nil)
	for range 30 {
		if _, err := client.Unary(context.Background(), &echopb.EchoRequest{Message: "hi"}); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("calls per backend:", exampleCounts(bs, before))
	// Output:
	// calls per backend: [10 10 10]
}

// ConsistentHash with WithHashKey sends every call that carries the same
// value of a metadata key to the same backend, while it can take calls.
func ExampleWithHashKey() {
	bs, stop := exampleBackends(3, false)
	defer stop()
	r, target := exampleResolver(exampleAddrs(bs)...)

	p, err := pool.New(target,
		pool.WithResolvers(r),
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
		pool.WithPolicy(pool.ConsistentHash),
		pool.WithHashKey("x-user-id"),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	exampleWaitReady(p, len(bs))

	client := echopb.NewEchoClient(p)
	for _, user := range []string{"alice", "bob", "carol"} {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user-id", user)
		backends := map[string]bool{}
		for range 10 {
			resp, err := client.Unary(ctx, &echopb.EchoRequest{Message: "hi"})
			if err != nil {
				log.Fatal(err)
			}
			backends[resp.Backend] = true
		}
		fmt.Printf("%s: 10 calls on %d backend\n", user, len(backends))
	}
	// Output:
	// alice: 10 calls on 1 backend
	// bob: 10 calls on 1 backend
	// carol: 10 calls on 1 backend
}

// A resolver reports backends of unequal size with WithAddressWeight;
// RoundRobin gives each a share of the calls in proportion.
func ExampleWithAddressWeight() {
	bs, stop := exampleBackends(3, false)
	defer stop()
	var addrs []resolver.Address
	for i, b := range bs {
		addr := resolver.Address{Addr: b.Addr()}
		addrs = append(addrs, pool.WithAddressWeight(addr, uint32(i+1))) // 1, 2, 3
	}
	r, target := exampleResolver(addrs...)

	p, err := pool.New(target,
		pool.WithResolvers(r),
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	exampleWaitReady(p, len(bs))

	calls := exampleSpread(p, bs, 60)
	fmt.Println("weights:", pool.AddressWeight(addrs[0]), pool.AddressWeight(addrs[1]), pool.AddressWeight(addrs[2]))
	fmt.Println("calls per backend:", calls)
	// Output:
	// weights: 1 2 3
	// calls per backend: [10 20 30]
}

// With WithHealthCheck the pool watches each server's grpc.health.v1
// status: a server that reports NOT_SERVING gets no new calls until it
// reports SERVING. (For shutting a server down this way, see package
// server's GracefulStop.)
func ExampleWithHealthCheck() {
	bs, stop := exampleBackends(2, true)
	defer stop()
	// b0 is still warming up.
	bs[0].Health().SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	r, target := exampleResolver(exampleAddrs(bs)...)

	p, err := pool.New(target,
		pool.WithResolvers(r),
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
		pool.WithHealthCheck(""), // "": the server as a whole
	)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitForReady(ctx); err != nil { // b1 is ready and serving
		log.Fatal(err)
	}

	client := echopb.NewEchoClient(p)
	call := func() string {
		resp, err := client.Unary(ctx, &echopb.EchoRequest{})
		if err != nil {
			log.Fatal(err)
		}
		return resp.Backend
	}
	before := exampleCounts(bs, nil)
	for range 10 {
		call()
	}
	fmt.Println("b0 not serving, calls per backend:", exampleCounts(bs, before))

	// b0 is ready: within a round trip the pool sends it calls again.
	bs[0].Health().SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for call() != "b0" {
		time.Sleep(time.Millisecond)
	}
	before = exampleCounts(bs, nil)
	for range 10 {
		call()
	}
	fmt.Println("b0 serving, calls per backend:", exampleCounts(bs, before))
	// Output:
	// b0 not serving, calls per backend: [0 10]
	// b0 serving, calls per backend: [5 5]
}

// WithMaxStreamAge ends long-lived streams now and then with
// codes.Unavailable so that, opened again, they spread over the backends
// as they are now. A client that must not lose its place reopens the
// stream and resumes after the last message the server acknowledged.
func ExampleWithMaxStreamAge() {
	bs, stop := exampleBackends(2, false)
	defer stop()
	r, target := exampleResolver(exampleAddrs(bs)...)

	p, err := pool.New(target,
		pool.WithResolvers(r),
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
		pool.WithMaxStreamAge(100*time.Millisecond), // minutes in production
	)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	exampleWaitReady(p, len(bs))

	client := echopb.NewEchoClient(p)
	const total = 20
	acked := 0 // messages the server has acknowledged (echoed)
	opens := 0
	ctx := context.Background()
	for acked < total {
		opens++
		err := sendFrom(ctx, client, &acked, total)
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable {
			log.Fatal(err)
		}
		// Unavailable: the pool ended the stream to rebalance (or its
		// backend went away). Reopen and resume from acked. A program
		// whose backends may all be down would back off here.
	}
	fmt.Println("acknowledged:", acked, "of", total)
	fmt.Println("stream reopened:", opens > 1)
	// Output:
	// acknowledged: 20 of 20
	// stream reopened: true
}

// sendFrom opens a stream and sends messages *acked … total-1, one every
// 10 ms, counting each one the server echoes. It returns nil when all
// are acknowledged and the stream has ended, and the stream's status
// otherwise.
func sendFrom(ctx context.Context, client echopb.EchoClient, acked *int, total int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := client.Bidi(ctx)
	if err != nil {
		return err
	}
	for *acked < total {
		want := fmt.Sprint("msg-", *acked)
		if err := s.Send(&echopb.EchoRequest{Message: want}); err != nil {
			_, err = s.Recv() // io.EOF from Send: the status comes from Recv
			return err
		}
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		if resp.Message != want {
			return fmt.Errorf("got %q, want %q", resp.Message, want)
		}
		*acked++
		time.Sleep(10 * time.Millisecond) // the application's own pace
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
