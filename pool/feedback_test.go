package pool_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// PeakEWMA hears every attempt's outcome: with one of 4 backends failing
// every call at once, a sequential caller sees almost no failure (LeastActive
// and round-robin fail a quarter of the calls). The bound is loose; the
// fake-seam test holds the exact one.
func TestPeakEWMAAvoidsAFailingBackend(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 4)
	p, _ := testutil.ReadyPool(t, bs, pool.WithPolicy(pool.PeakEWMA))
	c := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	for range 20 { // every backend answers once
		_, err := c.Unary(ctx, &echopb.EchoRequest{})
		require.NoError(t, err)
	}
	bs[0].SetFail(codes.Unavailable)
	const calls = 400
	failed := 0
	for range calls {
		if _, err := c.Unary(ctx, &echopb.EchoRequest{}); err != nil {
			require.Equal(t, codes.Unavailable, status.Code(err))
			failed++
		}
	}
	require.LessOrEqual(t, failed, calls/20, "%d of %d calls failed", failed, calls)
}

func TestPeakEWMAAndSlowStartOptions(t *testing.T) {
	require.Equal(t, "peak_ewma", pool.PeakEWMA.String())
	_, err := pool.New("dns:///x.test:443", pool.WithDialOptions(testutil.Insecure), pool.WithSlowStart(-time.Second))
	require.True(t, errors.Is(err, pool.ErrInvalidOption), "%v", err)
	p, err := pool.New("dns:///x.test:443", pool.WithDialOptions(testutil.Insecure), pool.WithPolicy(pool.PeakEWMA), pool.WithSlowStart(time.Second))
	require.NoError(t, err)
	require.NoError(t, p.Close())
}
