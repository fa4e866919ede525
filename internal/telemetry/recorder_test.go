package telemetry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/telemetry"
)

const (
	tgt    = "grpcpool.target=dns:///greeter:50051"
	b1     = "grpcpool.backend=10.0.0.1:50051"
	b2     = "grpcpool.backend=10.0.0.2:50051"
	other  = "grpcpool.backend=other"
	hello  = "grpc.method=echo.Echo/Hello"
	addr1  = "10.0.0.1:50051"
	addr2  = "10.0.0.2:50051"
	addr3  = "10.0.0.3:50051"
	method = "/echo.Echo/Hello"
)

// A sick backend: calls that fail over to a healthy one, the breaker of
// the sick one opening and closing again, a recycle, a learned limit.
func TestEveryInstrument(t *testing.T) {
	r, rd := newRecorder(t, "dns:///greeter:50051", telemetry.DefaultBackendLimit)
	ctx := context.Background()
	ms := time.Millisecond

	// Call 1: UNAVAILABLE on backend 2, retried on backend 1: OK.
	r.Active(addr2, telemetry.KindUnary, 1)
	r.AttemptDone(ctx, method, codes.Unavailable, addr2, 250*ms)
	r.Active(addr2, telemetry.KindUnary, -1)
	r.RetryAttempt(ctx, method, telemetry.Retry)
	r.Active(addr1, telemetry.KindUnary, 1)
	r.AttemptDone(ctx, method, codes.OK, addr1, 500*ms)
	r.Active(addr1, telemetry.KindUnary, -1)
	r.CallDone(ctx, method, codes.OK, 750*ms)
	// Call 2: a hedge, then the budget refuses a retry; it fails.
	r.RetryAttempt(ctx, method, telemetry.Hedge)
	r.RetryRefused(ctx, method)
	r.AttemptDone(ctx, method, codes.Unavailable, addr2, 125*ms)
	r.CallDone(ctx, method, codes.Unavailable, 125*ms)
	// A stream still open on backend 1; a call that waited to be placed.
	r.Active(addr1, telemetry.KindStream, 1)
	r.PickWait(ctx, 2*ms)
	// Backend 2's breaker opens, probes, closes.
	r.BreakerTransition(addr2, breaker.StateOpen)
	r.BreakerTransition(addr2, breaker.StateHalfOpen)
	r.BreakerTransition(addr2, breaker.StateClosed)
	r.Recycle(addr1, "max_age")
	r.Recycle(addr1, "max_age")
	r.Recycle(addr2, "removed")
	r.DrainTimeout(addr1)
	require.NoError(t, r.RegisterGauges(func(o telemetry.GaugeObserver) {
		o.Connections(addr1, telemetry.ConnReady, 2)
		o.Connections(addr1, telemetry.ConnDraining, 1)
		o.Connections(addr2, telemetry.ConnFailing, 1)
		o.Connections(addr2, telemetry.ConnState(core.Connecting), 1)
		o.Connections(addr2, telemetry.ConnState(core.Closed), 1) // counts as draining
		o.StreamLimit(addr1, 100)
		o.StreamLimit(addr2, 0) // unknown: absent
		o.Breaker(addr2, breaker.StateHalfOpen)
	}))

	c := collect(t, rd)
	assert.Len(t, c, 12, "instruments: %v", c)

	assert.Equal(t, map[string]hpoint{
		attrs(tgt, hello, "grpc.status=OK"):          {1, 0.75},
		attrs(tgt, hello, "grpc.status=UNAVAILABLE"): {1, 0.125},
	}, histograms(t, c, telemetry.CallDuration))
	assert.Equal(t, map[string]hpoint{
		attrs(tgt, hello, b2, "grpc.status=UNAVAILABLE"): {2, 0.375},
		attrs(tgt, hello, b1, "grpc.status=OK"):          {1, 0.5},
	}, histograms(t, c, telemetry.AttemptDuration))
	assert.Equal(t, map[string]hpoint{attrs(tgt): {1, 0.002}}, histograms(t, c, telemetry.PickWaitTime))
	assert.Equal(t, map[string]int64{
		attrs(tgt, b1, "grpcpool.kind=unary"):  0,
		attrs(tgt, b2, "grpcpool.kind=unary"):  0,
		attrs(tgt, b1, "grpcpool.kind=stream"): 1,
	}, sums(t, c, telemetry.BackendActive, "{call}", false))
	assert.Equal(t, map[string]int64{
		attrs(tgt, b2, "grpcpool.breaker.state=open"):      1,
		attrs(tgt, b2, "grpcpool.breaker.state=half_open"): 1,
		attrs(tgt, b2, "grpcpool.breaker.state=closed"):    1,
	}, sums(t, c, telemetry.BreakerTrans, "{transition}", true))
	assert.Equal(t, map[string]int64{
		attrs(tgt, hello, "grpcpool.retry.kind=retry"): 1,
		attrs(tgt, hello, "grpcpool.retry.kind=hedge"): 1,
	}, sums(t, c, telemetry.RetryAttempts, "{attempt}", true))
	assert.Equal(t, map[string]int64{attrs(tgt, hello): 1}, sums(t, c, telemetry.RetryRefusals, "{attempt}", true))
	assert.Equal(t, map[string]int64{
		attrs(tgt, b1, "grpcpool.reason=max_age"): 2,
		attrs(tgt, b2, "grpcpool.reason=removed"): 1,
	}, sums(t, c, telemetry.Recycles, "{connection}", true))
	assert.Equal(t, map[string]int64{attrs(tgt, b1): 1}, sums(t, c, telemetry.DrainTimeouts, "{connection}", true))
	assert.Equal(t, map[string]int64{
		attrs(tgt, b1, "grpcpool.connection.state=starting"):    0,
		attrs(tgt, b1, "grpcpool.connection.state=ready"):       2,
		attrs(tgt, b1, "grpcpool.connection.state=not_serving"): 0,
		attrs(tgt, b1, "grpcpool.connection.state=connecting"):  0,
		attrs(tgt, b1, "grpcpool.connection.state=failing"):     0,
		attrs(tgt, b1, "grpcpool.connection.state=draining"):    1,
		attrs(tgt, b2, "grpcpool.connection.state=starting"):    0,
		attrs(tgt, b2, "grpcpool.connection.state=ready"):       0,
		attrs(tgt, b2, "grpcpool.connection.state=not_serving"): 0,
		attrs(tgt, b2, "grpcpool.connection.state=connecting"):  1,
		attrs(tgt, b2, "grpcpool.connection.state=failing"):     1,
		attrs(tgt, b2, "grpcpool.connection.state=draining"):    1,
	}, gauges(t, c, telemetry.Connections, "{connection}"))
	assert.Equal(t, map[string]int64{attrs(tgt, b1): 100}, gauges(t, c, telemetry.StreamLimits, "{stream}"))
	assert.Equal(t, map[string]int64{
		attrs(tgt, b2, "grpcpool.breaker.state=closed"):    0,
		attrs(tgt, b2, "grpcpool.breaker.state=half_open"): 1,
		attrs(tgt, b2, "grpcpool.breaker.state=open"):      0,
	}, gauges(t, c, telemetry.BreakerStates, "{backend}"), "only backends with a reported breaker")

	// A second collection sees the gauges afresh, not added up.
	c = collect(t, rd)
	assert.Equal(t, int64(2), gauges(t, c, telemetry.Connections, "{connection}")[attrs(tgt, b1, "grpcpool.connection.state=ready")])
}

func TestBackendLimit(t *testing.T) {
	r, rd := newRecorder(t, "dns:///greeter:50051", 2)
	r.Recycle(addr1, "idle")
	r.Recycle(addr2, "idle")
	r.Recycle(addr3, "idle")
	r.Recycle("10.0.0.4:50051", "idle")
	limits := map[string]int64{addr1: 50, addr2: 60, addr3: 40, "10.0.0.4:50051": 30}
	require.NoError(t, r.RegisterGauges(func(o telemetry.GaugeObserver) {
		for a, l := range limits {
			o.Connections(a, telemetry.ConnReady, 1)
			o.StreamLimit(a, l)
			o.Breaker(a, breaker.StateOpen)
		}
	}))
	c := collect(t, rd)
	idle := "grpcpool.reason=idle"
	assert.Equal(t, map[string]int64{
		attrs(tgt, b1, idle):    1,
		attrs(tgt, b2, idle):    1,
		attrs(tgt, other, idle): 2,
	}, sums(t, c, telemetry.Recycles, "{connection}", true))
	assert.Equal(t, int64(2), gauges(t, c, telemetry.Connections, "{connection}")[attrs(tgt, other, "grpcpool.connection.state=ready")],
		"connections of backends under other add up")
	assert.Equal(t, map[string]int64{attrs(tgt, b1): 50, attrs(tgt, b2): 60, attrs(tgt, other): 30},
		gauges(t, c, telemetry.StreamLimits, "{stream}"), "other shows the smallest limit")
	assert.Equal(t, int64(2), gauges(t, c, telemetry.BreakerStates, "{backend}")[attrs(tgt, other, "grpcpool.breaker.state=open")],
		"under other: how many backends are in the state")

	// Forgetting a backend frees its value for the next new backend;
	// backends already under other stay there.
	r.ForgetBackend(addr1)
	r.ForgetBackend("never.seen:1")
	r.Recycle(addr3, "idle")
	r.Recycle("10.0.0.5:50051", "idle")
	got := sums(t, collect(t, rd), telemetry.Recycles, "{connection}", true)
	assert.Equal(t, int64(3), got[attrs(tgt, other, idle)])
	assert.Equal(t, int64(1), got[attrs(tgt, "grpcpool.backend=10.0.0.5:50051", idle)])
}

func TestBackendLimitZero(t *testing.T) {
	r, rd := newRecorder(t, "t", 0)
	r.Active(addr1, telemetry.KindStream, 1)
	r.Active(addr2, telemetry.KindStream, 1)
	assert.Equal(t, map[string]int64{attrs("grpcpool.target=t", other, "grpcpool.kind=stream"): 2},
		sums(t, collect(t, rd), telemetry.BackendActive, "{call}", false))
}

func TestMethodLimit(t *testing.T) {
	r, rd := newRecorder(t, "t", 1)
	ctx := context.Background()
	for i := range telemetry.MethodLimit + 10 {
		r.CallDone(ctx, fmt.Sprintf("/svc.S/M%d", i), codes.OK, time.Second)
	}
	h := histograms(t, collect(t, rd), telemetry.CallDuration)
	assert.Len(t, h, telemetry.MethodLimit+1)
	assert.Equal(t, uint64(10), h[attrs("grpcpool.target=t", "grpc.method=other", "grpc.status=OK")].Count)
	assert.Equal(t, uint64(1), h[attrs("grpcpool.target=t", "grpc.method=svc.S/M0", "grpc.status=OK")].Count)
}

func TestStatusNames(t *testing.T) {
	for c, want := range map[codes.Code]string{
		codes.OK: "OK", codes.Canceled: "CANCELLED", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
		codes.ResourceExhausted: "RESOURCE_EXHAUSTED", codes.Unavailable: "UNAVAILABLE",
		codes.Unauthenticated: "UNAUTHENTICATED", codes.Code(99): "UNKNOWN",
	} {
		assert.Equal(t, want, telemetry.CodeName(c), "code %d", c)
	}
	r, rd := newRecorder(t, "t", 1)
	r.AttemptDone(context.Background(), "/a.B/C", codes.Code(99), addr1, time.Second)
	assert.Contains(t, histograms(t, collect(t, rd), telemetry.AttemptDuration),
		attrs("grpcpool.target=t", "grpc.method=a.B/C", "grpcpool.backend="+addr1, "grpc.status=UNKNOWN"))
}

func TestGaugesRegistration(t *testing.T) {
	r, rd := newRecorder(t, "t", 1)
	calls := 0
	require.NoError(t, r.RegisterGauges(func(o telemetry.GaugeObserver) {
		calls++
		o.Connections(addr1, telemetry.ConnReady, 1)
	}))
	require.ErrorIs(t, r.RegisterGauges(func(telemetry.GaugeObserver) {}), telemetry.ErrGaugesRegistered)
	collect(t, rd)
	require.Equal(t, 1, calls)
	require.NoError(t, r.Close())
	require.NoError(t, r.Close())
	c := collect(t, rd)
	assert.Equal(t, 1, calls, "callback ran after Close")
	_, ok := c[telemetry.Connections]
	assert.False(t, ok, "connections exported after Close")
	require.ErrorIs(t, r.RegisterGauges(func(telemetry.GaugeObserver) {}), telemetry.ErrGaugesRegistered)
}

func TestBadInput(t *testing.T) {
	_, err := telemetry.New(noop.NewMeterProvider(), "t", -1)
	require.ErrorContains(t, err, "negative")
}

// A nil Recorder, one on a no-op provider and one on the global
// provider with no SDK installed record nothing and allocate nothing.
func TestDisabledCostsNothing(t *testing.T) {
	noopRec, err := telemetry.New(noop.NewMeterProvider(), "t", 10)
	require.NoError(t, err)
	ptrNoop := noop.NewMeterProvider()
	ptrRec, err := telemetry.New(&ptrNoop, "t", 10)
	require.NoError(t, err)
	global, err := telemetry.New(nil, "t", 10)
	require.NoError(t, err)
	for name, r := range map[string]*telemetry.Recorder{"nil": nil, "noop": noopRec, "*noop": ptrRec, "global": global} {
		require.NoError(t, r.RegisterGauges(func(telemetry.GaugeObserver) {}), name)
		allocs := testing.AllocsPerRun(100, func() { hotPath(r) })
		assert.Zero(t, allocs, "%s: allocations per call", name)
		r.BreakerTransition(addr1, breaker.StateOpen)
		r.Recycle(addr1, "idle")
		r.DrainTimeout(addr1)
		r.RetryRefused(context.Background(), method)
		r.ForgetBackend(addr1)
		require.NoError(t, r.Close(), name)
	}
}

// With an SDK installed, recording into attribute sets already seen
// allocates nothing in the Recorder.
func TestHotPathAllocations(t *testing.T) {
	r, _ := newRecorder(t, "t", 10)
	hotPath(r) // first use builds the cached sets
	assert.Zero(t, testing.AllocsPerRun(100, func() { hotPath(r) }))
}

// hotPath is what one unary call reports: placed, attempted, done.
func hotPath(r *telemetry.Recorder) {
	ctx := context.Background()
	r.Active(addr1, telemetry.KindUnary, 1)
	r.AttemptDone(ctx, method, codes.OK, addr1, time.Millisecond)
	r.Active(addr1, telemetry.KindUnary, -1)
	r.CallDone(ctx, method, codes.OK, time.Millisecond)
}

// Recording from many goroutines while backends are added, forgotten and
// collected loses nothing.
func TestConcurrent(t *testing.T) {
	r, rd := newRecorder(t, "t", 8)
	require.NoError(t, r.RegisterGauges(func(o telemetry.GaugeObserver) {
		for i := range 12 {
			o.Connections(fmt.Sprintf("10.0.0.%d:1", i), telemetry.ConnReady, 1)
		}
	}))
	const workers, per = 4, 300
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range per {
				a := fmt.Sprintf("10.0.0.%d:1", (w+i)%12)
				r.Recycle(a, "idle")
				r.CallDone(context.Background(), fmt.Sprintf("/s.S/M%d", i%5), codes.OK, time.Millisecond)
				if i%50 == 0 {
					var rm metricdata.ResourceMetrics
					assert.NoError(t, rd.Collect(context.Background(), &rm))
				}
			}
		}()
	}
	for range workers {
		<-done
	}
	var total int64
	for _, v := range sums(t, collect(t, rd), telemetry.Recycles, "{connection}", true) {
		total += v
	}
	assert.Equal(t, int64(workers*per), total)
	var calls uint64
	for _, p := range histograms(t, collect(t, rd), telemetry.CallDuration) {
		calls += p.Count
	}
	assert.Equal(t, uint64(workers*per), calls)
}

// ConnState converts the pool's connection states by value.
func TestConnStateNames(t *testing.T) {
	for s := core.Starting; s < core.Draining; s++ {
		assert.Equal(t, s.String(), telemetry.ConnState(s).String(), "state %d", s)
	}
	assert.Equal(t, "draining", telemetry.ConnState(core.Draining).String())
	assert.Equal(t, "draining", telemetry.ConnState(core.Closed).String())
}

func TestReasonLimit(t *testing.T) {
	r, rd := newRecorder(t, "t", 1)
	for i := range telemetry.ReasonLimit + 3 {
		r.Recycle(addr1, fmt.Sprintf("why%d", i))
	}
	r.Recycle(addr1, "")
	got := sums(t, collect(t, rd), telemetry.Recycles, "{connection}", true)
	assert.Len(t, got, telemetry.ReasonLimit+1)
	be := "grpcpool.backend=" + addr1
	assert.Equal(t, int64(4), got[attrs("grpcpool.target=t", be, "grpcpool.reason=other")])
	assert.Equal(t, int64(1), got[attrs("grpcpool.target=t", be, "grpcpool.reason=why0")])
}
