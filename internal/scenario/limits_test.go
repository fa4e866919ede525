package scenario

import (
	"flag"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var streamLimitFull = flag.Bool("streamlimit.full", false,
	"run TestRunStreamLimit's clients at the documented sizes (300 streams, limit 100, 2 s) and print the table")

// RunStreamLimit, small and fast: 30 streams, a limit of 10. The
// baselines never open more than the limit per connection they have; the
// pool opens all of them, with the limit configured or learned.
//
// Nothing here depends on how fast the machine is: the baselines are
// watched for a short window and checked against upper bounds the server
// enforces; the pools get a window far longer than they need (the run ends
// as soon as every stream is open) and must open all.
func TestRunStreamLimit(t *testing.T) {
	t.Parallel()
	if *streamLimitFull {
		res, err := RunStreamLimit(scenarioContext(t), StreamLimitConfig{}, t.Logf)
		require.NoError(t, err)
		res.Table().Fprint(os.Stdout)
		return
	}
	const n, l = 30, 10
	base := StreamLimitConfig{Streams: n, ServerLimit: l, StallTimeout: 100 * time.Millisecond}

	baselines := base
	baselines.Window = 300 * time.Millisecond
	baselines.Clients = []string{StreamLimitOneConn, StreamLimitFixed}
	res, err := RunStreamLimit(scenarioContext(t), baselines, t.Logf)
	require.NoError(t, err)
	t.Log(res.Table())
	for _, tt := range []struct {
		name  string
		conns int
	}{{StreamLimitOneConn, 1}, {StreamLimitFixed, 2}} {
		c, ok := res.Client(tt.name)
		require.True(t, ok, tt.name)
		assert.LessOrEqual(t, c.Opened, tt.conns*l, "%s: streams open", tt.name)
		assert.LessOrEqual(t, c.Conns, tt.conns, "%s: connections", tt.name)
		assert.LessOrEqual(t, c.Most, l, "%s: streams on one connection", tt.name)
		assert.Equal(t, int64(-1), c.Limit, tt.name)
		assert.Zero(t, c.Failed, tt.name)
	}

	pools := base
	pools.Window = 30 * time.Second
	pools.Clients = []string{StreamLimitSet, StreamLimitLearned}
	res, err = RunStreamLimit(scenarioContext(t), pools, t.Logf)
	require.NoError(t, err)
	t.Log(res.Table())
	for _, name := range pools.Clients {
		c, ok := res.Client(name)
		require.True(t, ok, name)
		assert.Equal(t, n, c.Opened, "%s: streams open", name)
		assert.GreaterOrEqual(t, c.Conns, n/l, "%s: connections", name)
		assert.LessOrEqual(t, c.Most, l, "%s: streams on one connection", name)
		assert.Zero(t, c.Failed, name)
	}
	set, _ := res.Client(StreamLimitSet)
	assert.Equal(t, int64(l), set.Limit, "configured limit in Stats")
	// A stream slowed by a busy machine can be taken for a stalled one, so
	// the learned limit is at most the server's, not exactly it.
	learned, _ := res.Client(StreamLimitLearned)
	assert.Positive(t, learned.Limit, "learned limit in Stats")
	assert.LessOrEqual(t, learned.Limit, int64(l), "learned limit in Stats")
}
