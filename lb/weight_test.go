package lb

import (
	"testing"

	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// TestRoundRobinFollowsWeights: a plain ClientConn with the policy gives
// backends weighted 1, 2 and 3 by its resolver 1:2:3 of the calls, whether
// the weights are set the standard way (grpc's weight package, on the
// endpoints of a resolver that lists endpoints only, or addresses too) or
// with pool.WithAddressWeight.
func TestRoundRobinFollowsWeights(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state func(addrs []string) resolver.State
	}{
		{"endpoint weights, endpoints only", func(addrs []string) resolver.State {
			return testutil.WeightedEndpoints(addrs, false)
		}},
		{"endpoint weights, addresses and endpoints", func(addrs []string) resolver.State {
			return testutil.WeightedEndpoints(addrs, true)
		}},
		{"address weights", func(addrs []string) resolver.State {
			as := testutil.Addrs(addrs...)
			for i := range as {
				as[i] = pool.WithAddressWeight(as[i], uint32(i+1))
			}
			return resolver.State{Addresses: as}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := startServers(t, 3)
			cc, r := dial(t, ss, ServiceConfig(Config{Size: 2}))
			r.UpdateState(tc.state(addrsOf(ss)))
			waitConns(t, ss, 2)
			waitAllCalled(t, cc, ss)
			before := unaryOf(ss)
			const n = 600
			mustCall(t, cc, n)
			got := unaryOf(ss)
			for i := range got {
				got[i] -= before[i]
			}
			for i, g := range got {
				want := int64(n * (i + 1) / 6)
				if d := g - want; d < -n*3/100 || d > n*3/100 {
					t.Errorf("backend of weight %d got %d of %d calls, want %d ± %d (all: %v)", i+1, g, n, want, n*3/100, got)
				}
			}
		})
	}
}
