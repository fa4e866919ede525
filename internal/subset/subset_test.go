package subset

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func names(n int, format string) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf(format, i)
	}
	return keys
}

func TestSelectEdges(t *testing.T) {
	keys := names(5, "b%d")
	assert.Nil(t, Select(nil, 0, 3), "no keys")
	assert.Nil(t, Select(keys, -1, 3), "negative index")
	assert.Nil(t, Select(keys, 0, 0), "size 0")
	assert.ElementsMatch(t, keys, Select(keys, 7, 5), "size = len(keys)")
	assert.ElementsMatch(t, keys, Select(keys, 7, 9), "size > len(keys)")
	all := Select(keys, 0, 9)
	all[0] = "changed"
	assert.Equal(t, "b0", keys[0], "Select must not hand out keys' array")
}

// TestSelectSubset: size distinct keys of keys, the same whatever the order
// of keys, for indexes across several rounds and every position of an
// anchor.
func TestSelectSubset(t *testing.T) {
	keys := names(50, "10.0.0.%d:443")
	rev := slices.Clone(keys)
	slices.Reverse(rev)
	for _, i := range []int{0, 1, 2, 3, 4, 63, 64, 65, 1000, 123457} {
		got := Select(keys, i, 7)
		require.Len(t, got, 7, "index %d", i)
		for _, k := range got {
			assert.Contains(t, keys, k, "index %d", i)
		}
		assert.Len(t, slices.Compact(slices.Sorted(slices.Values(got))), 7, "index %d: duplicates in %v", i, got)
		assert.Equal(t, got, Select(rev, i, 7), "index %d: depends on the order of keys", i)
	}
}

// TestSelectStable pins the scheme: clients of different builds must pick
// the same subsets, so a change of these values is a change of the wire
// contract between clients (all clients of a fleet must then be upgraded
// together).
func TestSelectStable(t *testing.T) {
	keys := names(10, "backend-%d:50051")
	assert.Equal(t, []string{"backend-3:50051", "backend-2:50051", "backend-0:50051"}, Select(keys, 0, 3))
	assert.Equal(t, []string{"backend-8:50051", "backend-0:50051", "backend-1:50051"}, Select(keys, 65, 3))
}

// TestSmallFleets: fleets smaller than a round still spread: every
// backend carries an even split of the connections, give or take one.
func TestSmallFleets(t *testing.T) {
	for _, f := range []struct{ clients, backends, size int }{
		{5, 20, 4}, {8, 40, 8}, {9, 40, 8}, {10, 40, 8}, {20, 100, 10},
	} {
		keys := names(f.backends, "backend-%02d.test:50051")
		load := make(map[string]int)
		for i := range f.clients {
			for _, k := range Select(keys, i, f.size) {
				load[k]++
			}
		}
		mean := float64(f.clients*f.size) / float64(f.backends)
		for _, k := range keys {
			assert.GreaterOrEqual(t, load[k], int(math.Floor(mean))-1, "%v: %s", f, k)
			assert.LessOrEqual(t, load[k], int(math.Ceil(mean))+1, "%v: %s", f, k)
		}
	}
}
