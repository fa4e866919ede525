package testutil

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver/manual"

	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
)

// Insecure is the dial option for plaintext loopback.
var Insecure = grpc.WithTransportCredentials(insecure.NewCredentials())

// NewPool makes a pool with insecure credentials and opts, closed at
// cleanup. It does not wait for connections.
func NewPool(t testing.TB, target string, opts ...pool.Option) *pool.Pool {
	t.Helper()
	opts = append([]pool.Option{pool.WithDialOptions(Insecure)}, opts...)
	p, err := pool.New(target, opts...)
	if err != nil {
		t.Fatalf("pool.New(%q): %v", target, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// ReadyPool is NewPool over bs through a manual resolver, waiting (WaitFor)
// until every backend has a ready connection and none connecting.
func ReadyPool(t testing.TB, bs []*backend.Server, opts ...pool.Option) (*pool.Pool, *manual.Resolver) {
	t.Helper()
	r, target := ManualTarget(AddrsOf(bs)...)
	p := NewPool(t, target, append([]pool.Option{pool.WithResolvers(r)}, opts...)...)
	WaitReady(t, p, len(bs))
	return p, r
}

// WaitReady waits (WaitFor) until p has n backends, each with a ready
// connection and none connecting.
func WaitReady(t testing.TB, p *pool.Pool, n int) {
	t.Helper()
	WaitFor(t, "all connections ready", func() bool {
		st := p.Stats()
		if len(st.Backends) != n {
			return false
		}
		for _, b := range st.Backends {
			if b.Ready == 0 || b.Connecting > 0 {
				return false
			}
		}
		return true
	})
}

// Find returns the pool's stats of the backend at addr, if it has any.
func Find(p *pool.Pool, addr string) (pool.BackendStats, bool) {
	for _, b := range p.Stats().Backends {
		if b.Addr == addr {
			return b, true
		}
	}
	return pool.BackendStats{}, false
}

// MustFind is Find, failing the test when the pool has no backend at addr.
func MustFind(t testing.TB, p *pool.Pool, addr string) pool.BackendStats {
	t.Helper()
	b, ok := Find(p, addr)
	if !ok {
		t.Fatalf("no backend %s in the pool's stats", addr)
	}
	return b
}
