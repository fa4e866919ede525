package pool_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/stats"

	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/subset"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

func TestWithSubsetInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opt  pool.Option
	}{
		{"size 0", pool.WithSubset(0, pool.StaticMembership(0, 1))},
		{"negative size", pool.WithSubset(-3, pool.StaticMembership(0, 1))},
		{"nil membership", pool.WithSubset(2, nil)},
		{"negative index", pool.WithSubset(2, pool.StaticMembership(-1, 3))},
		{"index = count", pool.WithSubset(2, pool.StaticMembership(3, 3))},
		{"count 0", pool.WithSubset(2, pool.StaticMembership(0, 0))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pool.New("passthrough:///x", pool.WithDialOptions(testutil.Insecure), tt.opt)
			if p != nil {
				_ = p.Close()
			}
			require.ErrorIs(t, err, pool.ErrInvalidOption)
		})
	}
}

func TestStaticMembershipWatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	var got [][2]int
	done := make(chan error, 1)
	go func() {
		done <- pool.StaticMembership(4, 9).Watch(ctx, func(i, c int) {
			got = append(got, [2]int{i, c})
			cancel() // one place is all a static membership gives
		})
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		require.Fail(t, "Watch did not return after its context ended")
	}
	assert.Equal(t, [][2]int{{4, 9}}, got)
}

// connCounter counts the connections a server has open, as the server
// sees them (a grpc stats handler's ConnBegin and ConnEnd).
type connCounter struct {
	mu   sync.Mutex
	open int
}

func (c *connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c *connCounter) HandleRPC(context.Context, stats.RPCStats)                       {}
func (c *connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (c *connCounter) HandleConn(_ context.Context, s stats.ConnStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch s.(type) {
	case *stats.ConnBegin:
		c.open++
	case *stats.ConnEnd:
		c.open--
	}
}

func (c *connCounter) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

// TestSubsetSpreadRealServers runs a fleet of 20 pools in one process over
// 100 loopback Echo servers, each pool with WithSubset(10,
// StaticMembership(i, 20)) and WithSize(1): 200 connections, and every
// server, counting the connections it accepted, carries 2 ± 1.
//
// The resolver reports stable names (backend-00.test:50051, …) that a
// dialer maps to the servers' ports, so the subsets do not depend on the
// ports the system hands out and the test is the same on every run.
func TestSubsetSpreadRealServers(t *testing.T) {
	t.Parallel()
	const (
		clients  = 20
		backends = 100
		size     = 10
	)
	counters := make([]*connCounter, backends)
	real := make(map[string]string, backends)
	var addrs []resolver.Address
	for i := range backends {
		counters[i] = &connCounter{}
		s, err := backend.Listen(backend.Options{
			Name:          fmt.Sprintf("b%d", i),
			ServerOptions: []grpc.ServerOption{grpc.StatsHandler(counters[i])},
		})
		require.NoError(t, err)
		t.Cleanup(s.Stop)
		name := fmt.Sprintf("backend-%02d.test:50051", i)
		real[name] = s.Addr()
		addrs = append(addrs, resolver.Address{Addr: name})
	}
	dial := grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", real[addr])
	})

	pools := make([]*pool.Pool, clients)
	for i := range pools {
		r := testutil.NewScheme("subset")
		r.InitialState(resolver.State{Addresses: addrs})
		pools[i] = testutil.NewPool(t, r.Scheme()+":///svc.test:50051",
			pool.WithResolvers(r), pool.WithDialOptions(dial), pool.WithSize(1),
			pool.WithSubset(size, pool.StaticMembership(i, clients)))
	}
	for i, p := range pools {
		testutil.WaitFor(t, fmt.Sprintf("pool %d: %d backends ready", i, size), func() bool {
			st := p.Stats()
			if len(st.Backends) != size {
				return false
			}
			for _, b := range st.Backends {
				if b.Ready != 1 {
					return false
				}
			}
			return true
		})
	}
	testutil.WaitFor(t, "servers to count 200 connections", func() bool {
		total := 0
		for _, c := range counters {
			total += c.Open()
		}
		return total == clients*size
	})
	hist := map[int]int{}
	for i, c := range counters {
		n := c.Open()
		hist[n]++
		assert.InDelta(t, 2, n, 1, "backend-%02d carries %d connections", i, n)
	}
	t.Logf("backends by connections carried: %v", hist)
}

// chanMembership reports the places sent on its channel.
type chanMembership chan [2]int

func (m chanMembership) Watch(ctx context.Context, notify func(index, count int)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case p := <-m:
			notify(p[0], p[1])
		}
	}
}

func backendAddrs(p *pool.Pool) []string {
	var out []string
	for _, b := range p.Stats().Backends {
		if b.Ready > 0 && b.Draining == 0 {
			out = append(out, b.Addr)
		}
	}
	slices.Sort(out)
	return out
}

// TestSubsetFollowsMembership: before its membership reports, a pool uses
// size backends; when the place arrives and when it changes, the pool moves
// to the subset of its index, and ignores places out of range.
func TestSubsetFollowsMembership(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 8)
	keys := testutil.AddrsOf(bs)
	want := func(index int) []string {
		s := subset.Select(keys, index, 3)
		slices.Sort(s)
		return s
	}
	require.NotEqual(t, want(0), want(1), "the test needs two different subsets")

	m := make(chanMembership)
	r, target := testutil.ManualTarget(keys...)
	p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1), pool.WithSubset(3, m))
	testutil.WaitFor(t, "a provisional subset of 3", func() bool { return len(backendAddrs(p)) == 3 })

	ctx := testutil.Context(t)
	send := func(index, count int) {
		t.Helper()
		select {
		case m <- [2]int{index, count}:
		case <-ctx.Done():
			require.Fail(t, "membership not watched")
		}
	}
	send(0, 4)
	testutil.WaitFor(t, "the subset of index 0", func() bool { return slices.Equal(backendAddrs(p), want(0)) })
	send(1, 4)
	testutil.WaitFor(t, "the subset of index 1", func() bool { return slices.Equal(backendAddrs(p), want(1)) })
	send(7, 4) // out of range: ignored
	send(1, 5) // returns once the place before it has been handled
	assert.Equal(t, want(1), backendAddrs(p), "an index out of range moved the subset")
}

// TestSubsetOfManyAddresses: with 5,000 resolved addresses and
// WithSubset(50, …), the pool makes 50 backends (not 5,000) and reaches
// ready on them; the time, against 50 addresses without a subset, is
// logged for docs/fleets.md, which measures it with the test run alone
// (-run TestSubsetOfManyAddresses).
func TestSubsetOfManyAddresses(t *testing.T) {
	t.Parallel()
	servers := testutil.StartBackends(t, 50)
	real := make(map[string]string)
	var many []resolver.Address
	for i := range 5000 {
		name := fmt.Sprintf("backend-%04d.test:50051", i)
		real[name] = servers[i%len(servers)].Addr()
		many = append(many, resolver.Address{Addr: name})
	}
	dial := grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", real[addr])
	})
	ready := func(addrs []resolver.Address, opts ...pool.Option) time.Duration {
		start := time.Now()
		r := testutil.NewScheme("many")
		r.InitialState(resolver.State{Addresses: addrs})
		p := testutil.NewPool(t, r.Scheme()+":///svc.test:50051",
			append([]pool.Option{pool.WithResolvers(r), pool.WithDialOptions(dial), pool.WithSize(1)}, opts...)...)
		testutil.WaitFor(t, "50 backends ready", func() bool {
			st := p.Stats()
			n := 0
			for _, b := range st.Backends {
				if b.Ready == 1 {
					n++
				}
			}
			return len(st.Backends) == 50 && n == 50
		})
		return time.Since(start)
	}
	_ = ready(many[:50]) // warm up: the first pool of a process pays for grpc's lazy set-up
	subsetted := ready(many, pool.WithSubset(50, pool.StaticMembership(7, 100)))
	plain := ready(many[:50])
	t.Logf("50 addresses, no subset: ready in %v; 5,000 addresses, subset 50: ready in %v", plain.Round(time.Millisecond), subsetted.Round(time.Millisecond))
}
