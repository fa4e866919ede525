package pool_test

import (
	"testing"

	"github.com/grpcpool/grpcpool/internal/testutil"
)

// A resolver that sets weights the standard way, on its endpoints with
// grpc's weight package, is honoured: RoundRobin spreads calls 1:2:3,
// whether the resolver lists endpoints only or addresses too (as grpc's
// own DNS resolver does).
func TestWeightedRoundRobinFromEndpointWeights(t *testing.T) {
	t.Parallel()
	for _, withAddrs := range []bool{false, true} {
		t.Run(map[bool]string{false: "endpoints only", true: "addresses and endpoints"}[withAddrs], func(t *testing.T) {
			t.Parallel()
			bs := testutil.StartBackends(t, 3)
			p := polWeightedPool(t, testutil.WeightedEndpoints(testutil.AddrsOf(bs), withAddrs))
			polRoundRobinFollowsWeights(t, bs, p)
		})
	}
}
