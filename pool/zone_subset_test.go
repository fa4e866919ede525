package pool_test

import (
	"fmt"
	"maps"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// WithSubset and WithZone: a client's subset has the zones in the
// proportions of the fleet, so that the split it computes from its
// subset is the fleet's. 30/30/30 backends in zones a/b/c, subsets of 9:
// every client of a fleet of 16 connects to 3 backends of each zone (and
// so keeps all its calls local, its zone holding a third of its backends
// and of the clients). Nothing needs to answer: the addresses' port is
// closed.
func TestSubsetKeepsZoneProportions(t *testing.T) {
	t.Parallel()
	var addrs []string
	for z := 1; z <= 3; z++ {
		for i := 1; i <= 30; i++ {
			addrs = append(addrs, fmt.Sprintf("127.0.%d.%d:1", z, i))
		}
	}
	for index := range 16 {
		r, target := testutil.ManualTarget(addrs...)
		p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1),
			pool.WithSubset(9, pool.StaticMembership(index, 16)),
			pool.WithZone("a"), pool.WithZonesByCIDR(zoneCIDRs))
		testutil.WaitFor(t, "the subset", func() bool { return len(p.Stats().Backends) == 9 })
		got := map[string]int{}
		for _, b := range p.Stats().Backends {
			got[b.Zone]++
		}
		require.True(t, maps.Equal(map[string]int{"a": 3, "b": 3, "c": 3}, got), "client %d: backends per zone %v, want 3 of each", index, got)
		require.NoError(t, p.Close())
	}
}
