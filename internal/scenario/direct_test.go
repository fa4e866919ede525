package scenario

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pick_first puts everything on one backend; round_robin and the pool
// spread streams and calls.
//
// Only what holds whatever the scheduler does is asserted: pick_first's
// 3.00, the exact spread of the round-robin clients (a counter over a
// fixed set of ready backends), the connection counts, and that
// LeastActive leaves no backend without streams (an empty backend wins
// every comparison it is sampled in). How evenly LeastActive spreads
// concurrent calls, latency and calls/s depend on timing: they are in the
// logged table, not asserted.
func TestDirect(t *testing.T) {
	t.Parallel()
	res, err := RunDirect(scenarioContext(t), DirectConfig{Backends: 3, Streams: 90, Calls: 300, PoolOptions: noStallLearning}, t.Logf)
	require.NoError(t, err)
	t.Log(res.Table())
	t.Log(res.Summary())
	get := func(name string) DirectClient {
		t.Helper()
		c, ok := res.Client(name)
		require.True(t, ok, "no client %q", name)
		return c
	}

	pf := get(DirectPickFirst)
	assert.Equal(t, 3.0, pf.StreamsMaxOverMean(), "pick_first streams %v", pf.Streams)
	assert.Equal(t, 1, pf.Conns)
	for _, name := range []string{DirectRoundRobin, DirectPoolRR, DirectPoolRRSize1} {
		c := get(name)
		// grpc's round_robin shares one counter: exact. The pool's
		// round-robin takes tickets per P when concurrent picks collide (or
		// the caller moves to another P), which keeps each backend within
		// one pick per P of its share, streams and calls alike.
		slack := int64(0)
		if name != DirectRoundRobin {
			slack = int64(runtime.GOMAXPROCS(0))
		}
		require.Len(t, c.Streams, 3)
		for i, n := range c.Streams {
			assert.InDelta(t, 30, n, float64(slack), "%s streams per backend %v (backend %d)", name, c.Streams, i)
		}
		assert.Equal(t, int64(90), sum(c.Streams), "%s streams", name)
		require.Len(t, c.Unary, 3)
		for i, n := range c.Unary {
			assert.InDelta(t, 100, n, float64(slack), "%s unary calls per backend %v (backend %d)", name, c.Unary, i)
		}
		assert.Equal(t, int64(300), sum(c.Unary), "%s unary calls", name)
	}
	assert.Equal(t, 3, get(DirectRoundRobin).Conns)
	assert.Equal(t, 3, get(DirectPoolRRSize1).Conns, "the like-for-like row has round_robin's connection count")
	assert.Equal(t, 6, get(DirectPoolRR).Conns)
	la := get(DirectPoolLA)
	assert.NotContains(t, la.Streams, int64(0), "LeastActive streams per backend")
	assert.Equal(t, int64(90), sum(la.Streams))
}
