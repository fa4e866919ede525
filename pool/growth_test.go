package pool_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// With every connection at its stream cap and a new
// connection failing to dial, a fail-fast call must not wait on the doomed
// growth: it overflows onto the least-loaded connection at once.
func TestFailedGrowthDoesNotStallFailFastCalls(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	px := startProxy(t, bs[0].Addr())
	r, target := testutil.ManualTarget(px.Addr())
	p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1), pool.WithMaxStreamsPerConn(1))
	ctx := testutil.ContextFor(t, 10*time.Second)
	require.NoError(t, p.WaitForReady(ctx))
	c := echopb.NewEchoClient(p)
	testutil.OpenBidi(t, ctx, c, 1) // the only connection is at its cap
	px.SetBackends(testutil.DeadAddr(t))
	for i := range 3 { // and again: each growth fails the same way
		_, err := echoUnary(testutil.ContextFor(t, 3*time.Second), c)
		require.NoError(t, err, "fail-fast call %d with the connection full and growth failing", i)
	}
}
