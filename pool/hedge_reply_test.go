package pool_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// A hedge makes its reply without reading the caller's, which the first
// attempt decodes into (run under -race): the backends answer within
// 0–1 ms, spread, and the hedge goes out at 0.5 ms, so many hedges are made
// while their call's first attempt is decoding.
func TestHedgeLeavesTheCallersReplyToTheFirstAttempt(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	spread := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		time.Sleep(time.Duration(n.Add(1)%20) * 50 * time.Microsecond)
		return h(ctx, req)
	}
	bs := testutil.StartBackendsWith(t, 2, func(int) backend.Options {
		return backend.Options{ServerOptions: []grpc.ServerOption{grpc.UnaryInterceptor(spread)}}
	})
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1),
		pool.WithHedging(retry.Hedging{Delay: 500 * time.Microsecond, MaxAttempts: 2, Methods: []string{echopb.Echo_Unary_FullMethodName}}))
	for i := range 300 {
		r := new(echopb.EchoResponse)
		err := p.Invoke(testutil.ContextFor(t, 10*time.Second), echopb.Echo_Unary_FullMethodName, &echopb.EchoRequest{Message: "x"}, r)
		require.NoError(t, err, "call %d", i)
		require.NotEmpty(t, r.GetBackend(), "call %d: the reply is empty", i)
	}
}
