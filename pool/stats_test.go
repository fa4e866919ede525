package pool_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// Stats counts logical calls and attempts apart: five calls whose first
// attempt the server sheds and whose retry succeeds are five calls and ten
// attempts.
func TestStatsCountsCallsAndAttemptsApart(t *testing.T) {
	t.Parallel()
	p, _ := sheddingPool(t)
	c := echopb.NewEchoClient(p)
	for i := range 5 {
		_, err := echoUnary(testutil.ContextFor(t, 5*time.Second), c)
		require.NoError(t, err, "call %d", i)
	}
	b := onlyBackend(t, p)
	require.EqualValues(t, 5, b.Calls, "logical calls")
	require.EqualValues(t, 10, b.Attempts, "attempts")
	require.Contains(t, p.Stats().String(), b.Addr)
}

// sheddingPool returns a pool with retries over one backend that sheds
// every other request with its own Unavailable: each call's first attempt
// fails and its retry succeeds. n counts the requests the backend saw.
func sheddingPool(t *testing.T) (p *pool.Pool, n *atomic.Int64) {
	t.Helper()
	n = new(atomic.Int64)
	flaky := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if n.Add(1)%2 == 1 {
			return nil, status.Error(codes.Unavailable, "shedding load")
		}
		return h(ctx, req)
	}
	s, err := backend.Listen(backend.Options{ServerOptions: []grpc.ServerOption{grpc.UnaryInterceptor(flaky)}})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	p, _ = testutil.ReadyPool(t, []*backend.Server{s}, pool.WithSize(1),
		pool.WithRetry(retry.Policy{MaxAttempts: 2, Budget: retry.BudgetConfig{Disabled: true}}))
	return p, n
}
