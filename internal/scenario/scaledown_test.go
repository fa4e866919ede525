package scenario

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Removing a backend under load fails no call of the pool, whichever of
// removal and stop comes first.
func TestScaleDown(t *testing.T) {
	t.Parallel()
	cfg := ScaleDownConfig{Rate: 400, Workers: 4, Duration: 600 * time.Millisecond, StopAfter: 100 * time.Millisecond, NoBaseline: true}
	res, err := RunScaleDown(scenarioContext(t), cfg, t.Logf)
	require.NoError(t, err)
	t.Log(res.Table())
	require.Len(t, res.Runs, 3)
	for _, rn := range res.Runs {
		assert.True(t, rn.Pool)
		assert.Positive(t, rn.Calls, rn.Order)
		assert.Zero(t, rn.Failed, "%s: %s", rn.Order, rn.ErrorsSeen)
	}
}
