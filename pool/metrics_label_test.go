package pool_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/telemetry"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// A removed backend whose last call the drain timeout cuts gives its
// grpcpool.backend value back when that call ends: with a limit of one
// backend, the backend that replaced it is labelled with its own address,
// not other.
func TestMetricsBackendLabelFreedWhenDrainTimeoutCuts(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	a, b := bs[0], bs[1]
	mp, read := metricsReader(t)
	p, r := testutil.ReadyPool(t, bs[:1], pool.WithSize(1), pool.WithMeterProvider(mp),
		pool.WithMetricsBackendLimit(1), pool.WithDrainTimeout(100*time.Millisecond))
	c := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)

	// A stream on a, held past a's removal and its drain timeout.
	ended := make(chan struct{})
	s, err := c.Bidi(ctx, grpc.OnFinish(func(error) { close(ended) }))
	require.NoError(t, err)
	require.NoError(t, s.Send(&echopb.EchoRequest{Message: "hi"}))
	_, err = s.Recv()
	require.NoError(t, err)
	r.UpdateState(testutil.State(b.Addr()))
	select {
	case <-ended:
	case <-ctx.Done():
		require.Fail(t, "the drain timeout did not cut the stream")
	}

	testutil.WaitFor(t, "only b, ready", func() bool {
		st := p.Stats()
		return len(st.Backends) == 1 && st.Backends[0].Addr == b.Addr() && st.Backends[0].Ready == 1
	})
	_, err = c.Unary(ctx, &echopb.EchoRequest{Message: "x"})
	require.NoError(t, err)
	method := "grpc.method=grpcpool.example.echo.v1.Echo/Unary"
	attempts := read(telemetry.AttemptDuration)
	assert.Equal(t, 1.0, attempts[keyOf(method, "grpc.status=OK", "grpcpool.backend="+b.Addr())], "attempts: %v", attempts)
	active := read(telemetry.BackendActive)
	assert.Equal(t, 0.0, active[keyOf("grpcpool.backend="+a.Addr(), "grpcpool.kind=stream")], "active: %v", active)
	assert.NotContains(t, active, keyOf("grpcpool.backend="+telemetry.Other, "grpcpool.kind=unary"), "active: %v", active)
}
