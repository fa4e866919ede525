package testutil_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

func TestWaitForReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int64
	testutil.WaitFor(t, "three polls", func() bool { return n.Add(1) >= 3 })
	assert.Equal(t, int64(3), n.Load())
}

func TestHoldChecksUntilTheEnd(t *testing.T) {
	var n atomic.Int64
	start := time.Now()
	testutil.Hold(t, 30*time.Millisecond, func() error { n.Add(1); return nil })
	assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	assert.Greater(t, n.Load(), int64(1))
}

func TestManualTargetsHaveDistinctSchemes(t *testing.T) {
	r1, t1 := testutil.ManualTarget("a:1")
	r2, t2 := testutil.ManualTarget("a:1")
	assert.NotEqual(t, r1.Scheme(), r2.Scheme())
	assert.NotEqual(t, t1, t2)
	assert.Equal(t, []string{"a:1", "b:2"}, []string{testutil.State("a:1", "b:2").Addresses[0].Addr, testutil.State("a:1", "b:2").Addresses[1].Addr})
}

func TestLogRecorderKeepsMessagesAndAttributes(t *testing.T) {
	rec := testutil.NewLogRecorder()
	log := slog.New(rec).With("backend", "b0")
	log.Info("connection recycled", "conn", 3)
	assert.True(t, rec.HasMessage("recycled"))
	assert.False(t, rec.HasMessage("backend"), "attributes are not part of the message")
	assert.Equal(t, "INFO connection recycled backend=b0 conn=3", rec.Text())
}

func TestStreamsThroughAReadyPool(t *testing.T) {
	bs := testutil.StartBackends(t, 2)
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1))
	b, ok := testutil.Find(p, bs[0].Addr())
	require.True(t, ok)
	assert.Equal(t, bs[0].Addr(), b.Addr)
	_, ok = testutil.Find(p, testutil.DeadAddr(t))
	assert.False(t, ok)

	ss := testutil.OpenStreams(t, p, 4)
	assert.Equal(t, int64(4), testutil.Sum(testutil.ByBackend(ss, []string{"b0", "b1"})))
	testutil.EndAll(t, ss)
	testutil.WaitFor(t, "streams ended on the servers", func() bool {
		return bs[0].ActiveStreams()+bs[1].ActiveStreams() == 0
	})

	ctx := testutil.Context(t)
	bidi := testutil.OpenBidi(t, ctx, echopb.NewEchoClient(p), 2)
	for _, s := range bidi {
		require.NoError(t, s.CloseSend())
	}
}

func TestOpenStreamReportsAFailure(t *testing.T) {
	cc, err := grpc.NewClient("passthrough:///"+testutil.DeadAddr(t), testutil.Insecure)
	require.NoError(t, err)
	defer cc.Close()
	_, err = testutil.OpenStream(cc)
	require.ErrorContains(t, err, "bidi")
}

func TestExpiringContextEndsWhenTold(t *testing.T) {
	ctx, expire := testutil.ExpiringContext(t)
	_, has := ctx.Deadline()
	assert.False(t, has, "no deadline is sent to a server")
	require.NoError(t, ctx.Err())
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	expire()
	<-child.Done()
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
	assert.ErrorIs(t, child.Err(), context.DeadlineExceeded, "what runs on it ends as at a deadline")
	expire() // again: no effect
}
