package pool

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// A stream gRPC finishes before the pool's NewStream has returned it (an
// interceptor ends it at once), or while it returns it, still ends its
// call exactly once: the caller's OnFinish runs once, with the stream's
// error, and the call's duration is recorded once.
func TestStreamEndedWhileReturnedEndsItsCallOnce(t *testing.T) {
	srv, err := backend.Listen(backend.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	p, err := New("passthrough:///"+srv.Addr(), WithMeterProvider(mp), WithDialOptions(
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStreamInterceptor(endAtOnce)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, p.WaitForReady(wctx))

	const n = 20
	var fins, nilErrs atomic.Int64
	onFinish := grpc.OnFinish(func(err error) {
		fins.Add(1)
		if err == nil {
			nilErrs.Add(1)
		}
	})
	for i := range n {
		ctx, end := context.WithCancel(wctx)
		e := &ending{end: end, finished: make(chan struct{}), wait: i%2 == 0}
		_, err := p.NewStream(context.WithValue(ctx, endingKey{}, e), &echopb.Echo_ServiceDesc.Streams[2], echopb.Echo_Bidi_FullMethodName, onFinish)
		end()
		require.NoError(t, err, "stream %d", i)
		select {
		case <-e.finished:
		case <-wctx.Done():
			t.Fatalf("stream %d: gRPC did not finish it", i)
		}
	}
	assert.EqualValues(t, n, fins.Load(), "the caller's OnFinish runs once per stream")
	assert.Zero(t, nilErrs.Load(), "OnFinish told a cancelled stream it succeeded")

	var rm metricdata.ResourceMetrics
	require.NoError(t, rd.Collect(context.Background(), &rm))
	var calls uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == telemetry.CallDuration {
				for _, dp := range h.DataPoints {
					calls += dp.Count
				}
			}
		}
	}
	assert.EqualValues(t, n, calls, "call durations recorded, want one per stream")
}
