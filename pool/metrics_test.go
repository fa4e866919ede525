package pool_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/telemetry"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// metricsReader returns a provider on a ManualReader and a function that
// collects one instrument's points: value (or count, for histograms) by
// attributes, rendered "k=v,k=v" without the target.
func metricsReader(t *testing.T) (*sdkmetric.MeterProvider, func(name string) map[string]float64) {
	t.Helper()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp, func(name string) map[string]float64 {
		var rm metricdata.ResourceMetrics
		require.NoError(t, rd.Collect(context.Background(), &rm))
		out := map[string]float64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != name {
					continue
				}
				switch d := m.Data.(type) {
				case metricdata.Histogram[float64]:
					for _, p := range d.DataPoints {
						out[attrKey(p.Attributes)] = float64(p.Count)
					}
				case metricdata.Sum[int64]:
					for _, p := range d.DataPoints {
						out[attrKey(p.Attributes)] = float64(p.Value)
					}
				case metricdata.Gauge[int64]:
					for _, p := range d.DataPoints {
						out[attrKey(p.Attributes)] = float64(p.Value)
					}
				}
			}
		}
		return out
	}
}

func attrKey(s attribute.Set) string {
	var kv []string
	for _, a := range s.ToSlice() {
		if a.Key != telemetry.AttrTarget {
			kv = append(kv, string(a.Key)+"="+a.Value.Emit())
		}
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

func keyOf(kv ...string) string {
	kv = slices.Clone(kv)
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// A sick backend: every logical call succeeds, its failed attempts are
// counted on the sick backend, the retries that hid them, and its breaker
// opening.
func TestMetricsSickBackend(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	sick, good := bs[0], bs[1]
	sick.SetFail(codes.Unavailable)
	mp, read := metricsReader(t)
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1), pool.WithMeterProvider(mp),
		pool.WithRetry(retry.Policy{}), pool.WithBreaker(breaker.Settings{ConsecutiveFailures: 1}))
	c := echopb.NewEchoClient(p)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 20
	for range n {
		_, err := c.Unary(ctx, &echopb.EchoRequest{Message: "x"})
		require.NoError(t, err)
	}
	method := "grpc.method=grpcpool.example.echo.v1.Echo/Unary"
	sickB, goodB := "grpcpool.backend="+sick.Addr(), "grpcpool.backend="+good.Addr()

	assert.Equal(t, map[string]float64{keyOf(method, "grpc.status=OK"): n}, read(telemetry.CallDuration))
	attempts := read(telemetry.AttemptDuration)
	failed := attempts[keyOf(method, "grpc.status=UNAVAILABLE", sickB)]
	assert.Equal(t, float64(n), attempts[keyOf(method, "grpc.status=OK", goodB)])
	assert.GreaterOrEqual(t, failed, 1.0, "attempts: %v", attempts)
	assert.Equal(t, map[string]float64{keyOf(method, "grpcpool.retry.kind=retry"): failed}, read(telemetry.RetryAttempts),
		"one retry per failed attempt")
	assert.Equal(t, 1.0, read(telemetry.BreakerTrans)[keyOf(sickB, "grpcpool.breaker.state=open")])
	assert.Equal(t, 1.0, read(telemetry.BreakerStates)[keyOf(sickB, "grpcpool.breaker.state=open")])
	active := read(telemetry.BackendActive)
	assert.Zero(t, active[keyOf(goodB, "grpcpool.kind=unary")], "nothing in flight: %v", active)
	assert.Equal(t, 1.0, read(telemetry.Connections)[keyOf(goodB, "grpcpool.connection.state=ready")])
}

// Streams count as active while open; a configured stream limit is
// exported; connections recycled for their age are counted by reason.
func TestMetricsStreamsLimitsRecycles(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	mp, read := metricsReader(t)
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1), pool.WithMeterProvider(mp),
		pool.WithMaxStreamsPerConn(50), pool.WithMaxConnAge(300*time.Millisecond))
	be := "grpcpool.backend=" + bs[0].Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := echopb.NewEchoClient(p).Bidi(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1.0, read(telemetry.BackendActive)[keyOf(be, "grpcpool.kind=stream")])
	assert.Equal(t, map[string]float64{keyOf(be): 50}, read(telemetry.StreamLimits))
	require.NoError(t, s.CloseSend())
	_, err = s.Recv()
	require.Error(t, err) // io.EOF
	testutil.WaitFor(t, "the stream counted as ended", func() bool {
		return read(telemetry.BackendActive)[keyOf(be, "grpcpool.kind=stream")] == 0
	})
	testutil.WaitFor(t, "a recycle for age", func() bool {
		return read(telemetry.Recycles)[keyOf(be, "grpcpool.reason=max_age")] >= 1
	})
	calls := read(telemetry.CallDuration)
	assert.Equal(t, 1.0, calls[keyOf("grpc.method=grpcpool.example.echo.v1.Echo/Bidi", "grpc.status=OK")], "calls: %v", calls)
}

// A hedge sent because the first attempt was slow is counted as a hedge;
// the call is one call.
func TestMetricsHedge(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	for _, b := range bs {
		b.SetDelay(300 * time.Millisecond)
	}
	mp, read := metricsReader(t)
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1), pool.WithMeterProvider(mp),
		pool.WithHedging(retry.Hedging{Delay: 20 * time.Millisecond, MaxAttempts: 2}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := echopb.NewEchoClient(p).Unary(ctx, &echopb.EchoRequest{Message: "x"})
	require.NoError(t, err)
	method := "grpc.method=grpcpool.example.echo.v1.Echo/Unary"
	assert.Equal(t, map[string]float64{keyOf(method, "grpcpool.retry.kind=hedge"): 1}, read(telemetry.RetryAttempts))
	assert.Equal(t, map[string]float64{keyOf(method, "grpc.status=OK"): 1}, read(telemetry.CallDuration))
	testutil.WaitFor(t, "both attempts recorded", func() bool {
		var n float64
		for _, v := range read(telemetry.AttemptDuration) {
			n += v
		}
		return n == 2
	})
}

// A hedge that finds no backend the call has not tried is not sent: it is
// neither counted as a hedge nor refused by the budget.
func TestMetricsHedgeWithoutTarget(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	bs[0].SetDelay(100 * time.Millisecond) // the hedging delay passes first
	mp, read := metricsReader(t)
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1), pool.WithMeterProvider(mp),
		pool.WithHedging(retry.Hedging{Delay: time.Millisecond, MaxAttempts: 3}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := echopb.NewEchoClient(p).Unary(ctx, &echopb.EchoRequest{Message: "x"})
	require.NoError(t, err)
	assert.Empty(t, read(telemetry.RetryAttempts), "hedges counted")
	assert.Empty(t, read(telemetry.RetryRefusals), "hedges refused")
	assert.Equal(t, int64(1), bs[0].Unary())
}

// A hedged call sends each request once per backend: with one backend, a
// hedge whose timer fires while the first attempt still waits for its
// pick (the pool starting) finds that backend taken and is not sent,
// however the two picks interleave; and a first attempt that sent
// nothing (its connection not yet ready) and is placed again leaves the
// backend to a hedge that took it meanwhile. Twenty calls, each on a pool
// just made, each answered by one request.
func TestHedgedCallSendsOncePerBackend(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	const calls = 20
	for range calls {
		p := testutil.NewPool(t, bs[0].Addr(), pool.WithSize(1),
			pool.WithHedging(retry.Hedging{Delay: time.Millisecond, MaxAttempts: 3}))
		_, err := echopb.NewEchoClient(p).Unary(testutil.Context(t), &echopb.EchoRequest{Message: "x"})
		require.NoError(t, err)
		require.NoError(t, p.Close())
	}
	assert.Equal(t, int64(calls), bs[0].Unary(), "requests the backend received for %d calls", calls)
}
