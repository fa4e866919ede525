package scenario

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The pool spreads streams onto added backends, churning or (with a max
// stream age) not; never-ending streams on round_robin stay where they are.
//
// How long the spreading takes is a timing figure: it is logged, not
// asserted. Asserted: no stream error in the pool's runs, that the added
// backends carry streams at the end of the pool's runs (each run lasts
// several stream lifetimes after the backends are added), that the max age
// reopened streams, and that nothing moves never-ending streams on
// round_robin (the added backends end with none).
func TestScaleUp(t *testing.T) {
	t.Parallel()
	var series []Series
	cfg := ScaleUpConfig{
		Streams:      120,
		Lifetime:     600 * time.Millisecond,
		MaxStreamAge: 600 * time.Millisecond,
		Warm:         300 * time.Millisecond,
		Timeout:      4 * time.Second,
		Tail:         200 * time.Millisecond,
		StaticWindow: 300 * time.Millisecond,
		SampleEvery:  50 * time.Millisecond,
		OnSeries:     func(s Series) { series = append(series, s) },
	}
	res, err := RunScaleUp(scenarioContext(t), cfg, t.Logf)
	require.NoError(t, err)
	t.Log(res.Table())
	t.Log(res.Summary())
	require.Len(t, res.Runs, 4)
	require.Len(t, series, 4)

	for _, name := range []string{ScaleUpPoolChurning, ScaleUpPoolMaxAge} {
		rn, ok := res.Run(name)
		require.True(t, ok, name)
		assert.Zero(t, rn.Errors, "%s: %s", name, rn.ErrorsSeen)
		require.Len(t, rn.Final, 6)
		assert.Positive(t, sum(rn.Final[3:]), "%s: streams on the added backends at the end: %v", name, rn.Final)
	}
	maxAge, _ := res.Run(ScaleUpPoolMaxAge)
	assert.Positive(t, maxAge.Reopened, "max stream age run: no stream was reopened")

	static, ok := res.Run(ScaleUpRRNeverEnding)
	require.True(t, ok)
	assert.False(t, static.Balanced)
	assert.Equal(t, []int64{0, 0, 0}, static.Final[3:], "round_robin never-ending streams at the end: %v", static.Final)
	assert.Equal(t, int64(cfg.Streams), sum(static.Final))

	for _, s := range series {
		assert.Len(t, s.Names, 6, s.Title)
		// At least one sample before the backends are added and one after,
		// and the marks "streams open" and "+3 backends".
		assert.GreaterOrEqual(t, len(s.Points), 2, s.Title)
		assert.GreaterOrEqual(t, len(s.Marks), 2, s.Title)
	}
}
