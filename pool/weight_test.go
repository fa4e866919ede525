package pool_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// A resolver that sets weights the standard way, on its endpoints with
// grpc's weight package, is honoured: RoundRobin spreads calls 1:2:3,
// whether the resolver lists endpoints only or addresses too (as grpc's
// own DNS resolver does).
func TestWeightedRoundRobinFromEndpointWeights(t *testing.T) {
	t.Parallel()
	for _, withAddrs := range []bool{false, true} {
		t.Run(map[bool]string{false: "endpoints only", true: "addresses and endpoints"}[withAddrs], func(t *testing.T) {
			t.Parallel()
			bs := testutil.StartBackends(t, 3)
			p := polWeightedPool(t, testutil.WeightedEndpoints(testutil.AddrsOf(bs), withAddrs))
			polRoundRobinFollowsWeights(t, bs, p)
		})
	}
}

// Smooth weighted round-robin repeats a heavy backend in
// consecutive slots; a call is refused only after every distinct pickable
// backend refused it, and a retry goes to a backend not tried yet.
func TestWeightedRoundRobinTriesEveryDistinctBackend(t *testing.T) {
	t.Parallel()
	const calls = 100
	t.Run("retry goes to the untried light backend", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 2)
		light, heavy := bs[0], bs[1]
		heavy.SetFail(codes.Unavailable)
		r, target := testutil.WeightedTarget(testutil.AddrsOf(bs), []uint32{1, 10})
		p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1),
			pool.WithRetry(retry.Policy{MaxAttempts: 2, Budget: retry.BudgetConfig{Disabled: true}}))
		// Both backends ready: a retry can go to the light one only once it
		// can take calls (p.WaitForReady returns when either is ready).
		testutil.WaitReady(t, p, len(bs))
		c := echopb.NewEchoClient(p)
		failed, first := 0, error(nil)
		for range calls {
			got, err := echoUnary(testutil.ContextFor(t, 5*time.Second), c, grpc.WaitForReady(true))
			if err != nil || got != light.Name() {
				failed++
				first = cmpErr(first, err)
			}
		}
		require.Zero(t, failed, "%d of %d calls failed though their retry could go to the light backend; first: %v", failed, calls, first)
	})
	t.Run("heavy backend half-open with its probe out", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 2)
		light, heavy := bs[0], bs[1]
		r, target := testutil.WeightedTarget(testutil.AddrsOf(bs), []uint32{1, 10})
		p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1),
			pool.WithBreaker(breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: 50 * time.Millisecond}))
		c := echopb.NewEchoClient(p)
		ctx := testutil.Context(t)
		require.NoError(t, p.WaitForReady(ctx))
		for p.Stats().Backends[0].Ready == 0 || p.Stats().Backends[1].Ready == 0 {
			require.NoError(t, ctx.Err(), "both backends ready")
			time.Sleep(5 * time.Millisecond)
		}
		heavy.SetFail(codes.Unavailable)
		for testutil.MustFind(t, p, heavy.Addr()).Breaker != breaker.StateOpen {
			require.NoError(t, ctx.Err(), "heavy backend's breaker opening")
			_, _ = echoUnary(ctx, c)
		}
		heavy.SetBlackHole()
		for testutil.MustFind(t, p, heavy.Addr()).Breaker != breaker.StateHalfOpen {
			require.NoError(t, ctx.Err(), "heavy backend's breaker half-open")
			time.Sleep(5 * time.Millisecond)
		}
		// Calls until one is the heavy backend's probe, held by its black hole
		// until the test ends, however long the test takes.
		probeCtx, endProbe := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait)
		t.Cleanup(endProbe)
		before := heavy.Calls()
		for heavy.Calls() == before {
			require.NoError(t, ctx.Err(), "a probe reaching the heavy backend")
			wg.Go(func() { _, _ = echoUnary(probeCtx, c) })
			time.Sleep(5 * time.Millisecond)
		}
		failed, first := 0, error(nil)
		for range calls {
			got, err := echoUnary(testutil.ContextFor(t, 5*time.Second), c)
			if err != nil || got != light.Name() {
				failed++
				first = cmpErr(first, err)
			}
		}
		require.Zero(t, failed, "%d of %d calls failed while the light backend was ready; first: %v", failed, calls, first)
	})
}
