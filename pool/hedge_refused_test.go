package pool

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	echobackend "github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/telemetry"
	"github.com/grpcpool/grpcpool/retry"
)

// refusedThenGone is a connection interceptor (it runs once per attempt)
// that plays one hedged call: attempt 1 waits until the budget has
// refused the call's hedge, then finds its backend gone (the server
// stopped, its connection no longer ready: nothing was sent). Every later
// placement goes through.
type refusedThenGone struct {
	p       *Pool
	bs      []*echobackend.Server
	refused func() bool
	n       atomic.Int64
}

func (s *refusedThenGone) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if s.n.Add(1) > 1 {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	await := func(done func() bool) error {
		for !done() {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	if err := await(s.refused); err != nil {
		return err
	}
	// The attempt's backend is the one it is active on: the hedge was
	// refused before it began.
	var addr string
	for _, b := range s.p.Stats().Backends {
		if b.ActiveCalls == 1 {
			addr = b.Addr
		}
	}
	for _, b := range s.bs {
		if b.Addr() == addr {
			b.Stop()
		}
	}
	err := await(func() bool {
		for _, b := range s.p.Stats().Backends {
			if b.Addr == addr && b.Ready > 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return status.Error(codes.Unavailable, msgConnNotReady)
}

// A hedge the budget refuses sends nothing, so it leaves the backend it
// had picked to the call's other attempts: the first attempt, placed
// again after its own backend went away, goes there.
func TestHedgeRefusedLeavesItsBackend(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	bs := startEchoBackends(t, 2)
	method := echopb.Echo_Unary_FullMethodName
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	play := &refusedThenGone{bs: bs, refused: func() bool {
		var rm metricdata.ResourceMetrics
		if rd.Collect(context.Background(), &rm) != nil {
			return false
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == telemetry.RetryRefusals && len(d.DataPoints) > 0 {
					return true
				}
			}
		}
		return false
	}}
	// A budget the test spends before the call: its hedge is refused.
	p := newHedgePool(ctx, t, addrsOf(bs), WithMeterProvider(mp),
		WithDialOptions(grpc.WithChainUnaryInterceptor(play.intercept)),
		WithRetry(retry.Policy{Budget: retry.BudgetConfig{Ratio: 1e-9, MinPerSecond: 1, Window: time.Hour}}),
		WithHedging(retry.Hedging{Delay: time.Millisecond, MaxAttempts: 2, Methods: []string{method}}))
	play.p = p
	for p.caller.budget.Withdraw() {
	}
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	err := p.Invoke(cctx, method, &echopb.EchoRequest{Message: "x"}, &echopb.EchoResponse{})
	require.NoError(t, err, "placements: %d", play.n.Load())
	require.EqualValues(t, 2, play.n.Load(), "placements: attempt 1, attempt 1 again")
}
