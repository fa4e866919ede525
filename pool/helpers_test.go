package pool_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
)

var insecureCreds = grpc.WithTransportCredentials(insecure.NewCredentials())

// startBackends starts n real Echo servers on loopback TCP.
func startBackends(t testing.TB, n int) []*backend.Server {
	t.Helper()
	var bs []*backend.Server
	for i := range n {
		s, err := backend.Listen(backend.Options{Name: fmt.Sprintf("b%d", i)})
		if err != nil {
			t.Fatalf("backend: %v", err)
		}
		t.Cleanup(s.Stop)
		bs = append(bs, s)
	}
	return bs
}

var schemes atomic.Int64

// manualTarget returns a manual resolver under a fresh scheme reporting
// addrs, and the target that uses it.
func manualTarget(addrs ...string) (*manual.Resolver, string) {
	r := manual.NewBuilderWithScheme(fmt.Sprintf("test%d", schemes.Add(1)))
	r.InitialState(resolver.State{Addresses: toAddrs(addrs...)})
	return r, r.Scheme() + ":///svc.test:50051"
}

func toAddrs(addrs ...string) []resolver.Address {
	out := make([]resolver.Address, len(addrs))
	for i, a := range addrs {
		out[i] = resolver.Address{Addr: a}
	}
	return out
}

func addrsOf(bs []*backend.Server) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Addr()
	}
	return out
}

// newPool makes a pool with insecure credentials, closed at cleanup.
func newPool(t testing.TB, target string, opts ...pool.Option) *pool.Pool {
	t.Helper()
	opts = append([]pool.Option{pool.WithDialOptions(insecureCreds)}, opts...)
	p, err := pool.New(target, opts...)
	if err != nil {
		t.Fatalf("pool.New(%q): %v", target, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// readyPool is newPool over backends through a manual resolver, waiting
// until every backend has all its connections ready.
func readyPool(t testing.TB, bs []*backend.Server, opts ...pool.Option) (*pool.Pool, *manual.Resolver) {
	t.Helper()
	r, target := manualTarget(addrsOf(bs)...)
	p := newPool(t, target, append([]pool.Option{pool.WithResolvers(r)}, opts...)...)
	waitFor(t, "all connections ready", func() bool {
		st := p.Stats()
		if len(st.Backends) != len(bs) {
			return false
		}
		for _, b := range st.Backends {
			if b.Ready == 0 || b.Connecting > 0 {
				return false
			}
		}
		return true
	})
	return p, r
}

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after a generous
// bound.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func activeStreams(p *pool.Pool) int64 {
	var n int64
	for _, b := range p.Stats().Backends {
		n += b.ActiveStreams
	}
	return n
}

func activeCalls(p *pool.Pool) int64 {
	var n int64
	for _, b := range p.Stats().Backends {
		n += b.ActiveCalls
	}
	return n
}

// serverStreams returns the streams open on each backend, counted on the
// servers.
func serverStreams(bs []*backend.Server) []int64 {
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.ActiveStreams()
	}
	return out
}

// openBidi opens n Bidi streams and waits until each has had one echo back.
func openBidi(t testing.TB, ctx context.Context, c echopb.EchoClient, n int) []grpc.BidiStreamingClient[echopb.EchoRequest, echopb.EchoResponse] {
	t.Helper()
	out := make([]grpc.BidiStreamingClient[echopb.EchoRequest, echopb.EchoResponse], 0, n)
	for i := range n {
		s, err := c.Bidi(ctx)
		if err != nil {
			t.Fatalf("stream %d: Bidi: %v", i, err)
		}
		if err := s.Send(&echopb.EchoRequest{Message: "hi"}); err != nil {
			t.Fatalf("stream %d: Send: %v", i, err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatalf("stream %d: Recv: %v", i, err)
		}
		out = append(out, s)
	}
	return out
}
