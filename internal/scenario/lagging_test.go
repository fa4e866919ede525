package scenario

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/pool"
)

// Small sizes: every call of the open loop is made and answered, the
// attempts are counted on the servers, the clients are the two grpc-go
// ones and the one pool -policy asked for, and grpc-go's round_robin sends
// the lagging backend its third (a counter over three ready backends).
// How much less PeakEWMA sends it depends on timing, which a busy machine
// blurs (a 50 ms lag is lost in its stalls): that is in the logged table
// and asserted on the fake seam (TestPeakEWMAAvoidsABadBackend,
// TestPeakEWMASeesASlowBackendBeforeItsCallsEnd in internal/core).
func TestLaggingSmall(t *testing.T) {
	t.Parallel()
	pe := pool.PeakEWMA
	cfg := LaggingConfig{Backends: 3, Rate: 200, Duration: 500 * time.Millisecond, Rounds: 1,
		Delay: 50 * time.Millisecond, CallTimeout: 30 * time.Second, Policy: &pe}
	res, err := RunLagging(scenarioContext(t), cfg, t.Logf)
	require.NoError(t, err)
	t.Log(res.Table())
	assert.LessOrEqual(t, len(res.Summary()), MaxWidth, res.Summary())
	names := make([]string, len(res.Clients))
	for i, c := range res.Clients {
		names[i] = c.Name
		for _, ph := range []LaggingPhase{c.Healthy, c.Lagging} {
			assert.Equal(t, 100, ph.Calls, "%s", c.Name)
			assert.Zero(t, ph.Failed, "%s", c.Name)
			assert.Equal(t, int64(100), sum(ph.Attempts), "%s: attempts %v", c.Name, ph.Attempts)
		}
	}
	assert.Equal(t, []string{LaggingRR, LaggingLeastRequest, "pool PeakEWMA"}, names)
	rr, ok := res.Client(LaggingRR)
	require.True(t, ok)
	assert.InDelta(t, 1.0/3, rr.Lagging.OnFirst(), 0.02, "round_robin: attempts %v", rr.Lagging.Attempts)
}

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want pool.Policy
	}{
		{"RoundRobin", pool.RoundRobin}, {"round_robin", pool.RoundRobin},
		{"LeastActive", pool.LeastActive}, {"least_active", pool.LeastActive},
		{"PeakEWMA", pool.PeakEWMA}, {"peak_ewma", pool.PeakEWMA},
		{"ConsistentHash", pool.ConsistentHash},
	} {
		got, err := ParsePolicy(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, "ParsePolicy(%q): got %v, want %v", tc.in, got, tc.want)
	}
	_, err := ParsePolicy("p2c")
	assert.ErrorContains(t, err, `unknown policy "p2c" (have RoundRobin, LeastActive, PeakEWMA, ConsistentHash)`)
}
