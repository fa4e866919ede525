package etcdmembership

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/internal/subset"
	"github.com/grpcpool/grpcpool/pool"
)

// TestPoolsFollowFleet: four pools over eight real servers, each with
// WithSubset(3, its Membership): every pool connects to the subset of the
// index etcd gave it, and when one client leaves, the client that takes
// its index moves its pool to the new subset.
func TestPoolsFollowFleet(t *testing.T) {
	e := harness.StartEtcd(t)
	cli := e.Client(t)
	var keys []string
	for i := range 8 {
		s, err := backend.Listen(backend.Options{Name: fmt.Sprintf("b%d", i)})
		require.NoError(t, err)
		t.Cleanup(s.Stop)
		keys = append(keys, s.Addr())
	}
	type client struct {
		m *Membership
		p *pool.Pool
	}
	var cs []client
	for i := range 4 {
		m := join(t, cli, "/test/pools/", 2*time.Second)
		r := manual.NewBuilderWithScheme(fmt.Sprintf("fleet%d", i))
		var addrs []resolver.Address
		for _, k := range keys {
			addrs = append(addrs, resolver.Address{Addr: k})
		}
		r.InitialState(resolver.State{Addresses: addrs})
		p, err := pool.New(r.Scheme()+":///svc.test:50051", pool.WithResolvers(r),
			pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
			pool.WithSize(1), pool.WithSubset(3, m))
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		cs = append(cs, client{m, p})
	}
	onSubsets := func(what string) {
		t.Helper()
		harness.Eventually(t, 20*time.Second, what, func() error {
			for i, c := range cs {
				index, count, ok := c.m.Place()
				if !ok || count != len(cs) {
					return fmt.Errorf("client %d: place (%d, %d, %v)", i, index, count, ok)
				}
				want := slices.Sorted(slices.Values(subset.Select(keys, index, 3)))
				var got []string
				for _, b := range c.p.Stats().Backends {
					if b.Ready > 0 && b.Draining == 0 {
						got = append(got, b.Addr)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					return fmt.Errorf("client %d (index %d): backends %v, want %v", i, index, got, want)
				}
			}
			return nil
		})
	}
	onSubsets("every pool on its index's subset")

	leaver := slices.IndexFunc(cs, func(c client) bool { i, _, _ := c.m.Place(); return i == 1 })
	require.GreaterOrEqual(t, leaver, 0)
	require.NoError(t, cs[leaver].p.Close())
	require.NoError(t, cs[leaver].m.Close())
	cs = slices.Delete(cs, leaver, leaver+1)
	onSubsets("the pools after a client left")
}
