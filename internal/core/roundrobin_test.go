package core_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest"
)

// Round-robin stays exact with per-P counters: one caller, on whichever P
// it runs, gives every backend its share within one, and every connection
// of a backend its share within one, over any number of picks.
func TestRoundRobinExactForOneCaller(t *testing.T) {
	f := coretest.New(t, core.Config{Size: 2})
	keys := []string{"a", "b", "c", "d", "e", "f"}
	f.Resolve(keys...)
	for _, calls := range []int{6 * 100, 6*100 + 5, 7} {
		byB, byC := f.PickN(t, calls, core.PickInfo{})
		for _, key := range keys {
			require.InDelta(t, float64(calls)/6, byB[key], 1, "backend %s of %v", key, byB)
		}
		for c, n := range byC {
			require.InDelta(t, float64(byB[c.Backend.Key])/2, n, 1, "connection %d", c.ID)
		}
	}
}
