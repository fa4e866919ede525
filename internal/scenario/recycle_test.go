package scenario

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Replacing every connection several times under load fails nothing.
//
// The run ends when every connection was replaced 3 times (about 1 s at a
// 100 ms max age) or at the 20 s timeout; the count of failures is what is
// asserted, whatever the machine's speed.
func TestRecycle(t *testing.T) {
	t.Parallel()
	cfg := RecycleConfig{MaxConnAge: 100 * time.Millisecond, Recycles: 3, Rate: 200, Streams: 4}
	res, err := RunRecycle(scenarioContext(t), cfg, t.Logf)
	require.NoError(t, err)
	t.Log(res.Table())
	t.Log(res.Summary())
	assert.True(t, res.Done, "not every connection was recycled %d times", cfg.Recycles)
	assert.Positive(t, res.Unary)
	assert.Positive(t, res.Streams)
	assert.Zero(t, res.UnaryFailed, res.UnaryErrors)
	assert.Zero(t, res.StreamsFailed, res.StreamErrors)
	require.Len(t, res.Backends, 3)
	for _, b := range res.Backends {
		assert.Zero(t, b.PoolFailures, "%s: failures the pool counted", b.Name)
	}
}
