package pool_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// A fresh pool places no attempt on a connection that gRPC itself does
// not yet call READY: calls that wait for the pool's first connections
// are each sent once, none failing inside the connection as "not ready"
// and placed again. Counted by an interceptor on the connections, which
// sees every attempt, over fresh pools with calls already waiting.
func TestFreshPoolPlacesNoAttemptBeforeItsConnectionIsReady(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	var attempts, notReady atomic.Int64
	var firstErr atomic.Value
	count := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
		cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		attempts.Add(1)
		if strings.HasPrefix(status.Convert(err).Message(), "grpcpool: connection not ready") {
			notReady.Add(1)
			firstErr.CompareAndSwap(nil, err)
		}
		return err
	})
	const pools, calls = 50, 16
	for range pools {
		p := testutil.NewPool(t, bs[0].Addr(), pool.WithSize(2), pool.WithDialOptions(count))
		c := echopb.NewEchoClient(p)
		var wg sync.WaitGroup
		errs := make(chan error, calls)
		for range calls {
			wg.Go(func() {
				if _, err := c.Unary(testutil.Context(t), &echopb.EchoRequest{Message: "x"}); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.NoError(t, p.Close())
	}
	require.Zerof(t, notReady.Load(), "%d of %d attempts on %d fresh pools placed again, found their connection not ready (first: %v)",
		notReady.Load(), attempts.Load(), pools, firstErr.Load())
}
