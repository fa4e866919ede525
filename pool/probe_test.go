package pool_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// silentKey in a stream's metadata makes silentStreams hold the stream
// open without a word until the client ends it: a subscription whose
// first event has not come.
const silentKey = "x-silent"

// silentStreams returns a server interceptor for silentKey, and the number
// of silent streams open.
func silentStreams() (grpc.StreamServerInterceptor, *atomic.Int64) {
	var open atomic.Int64
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if md, _ := metadata.FromIncomingContext(ss.Context()); len(md.Get(silentKey)) > 0 {
			open.Add(1)
			defer open.Add(-1)
			<-ss.Context().Done()
			return status.FromContextError(ss.Context().Err()).Err()
		}
		return h(srv, ss)
	}, &open
}

// silentProbe starts a backend with silentStreams and a pool over it
// (breaker: one failure opens it for 200 ms; opts added), fails one
// call so the breaker opens, lets the backend recover, and, once the
// breaker is half-open, places a silent stream as its probe. It returns
// when the stream is open on the server; the stream ends at the test's
// end.
func silentProbe(t *testing.T, opts ...pool.Option) (*backend.Server, *pool.Pool, echopb.EchoClient, context.Context, *atomic.Int64) {
	t.Helper()
	silent, open := silentStreams()
	b := testutil.StartBackend(t, backend.Options{ServerOptions: []grpc.ServerOption{grpc.StreamInterceptor(silent)}})
	p, _ := testutil.ReadyPool(t, []*backend.Server{b}, append([]pool.Option{
		pool.WithBreaker(breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: 200 * time.Millisecond}),
		pool.WithMaxEjectPercent(100)}, opts...)...)
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)

	b.SetFail(codes.Unavailable)
	if _, err := client.Unary(ctx, &echopb.EchoRequest{}); status.Code(err) != codes.Unavailable {
		require.Fail(t, fmt.Sprintf("call on the failing backend: %v, want Unavailable", err))
	}
	testutil.WaitFor(t, "the breaker to open", func() bool { return testutil.MustFind(t, p, b.Addr()).Breaker == breaker.StateOpen })
	b.SetOK()
	testutil.WaitFor(t, "the breaker to be half-open", func() bool { return testutil.MustFind(t, p, b.Addr()).Breaker == breaker.StateHalfOpen })

	sctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, silentKey, "1"))
	t.Cleanup(cancel)
	if _, err := client.ServerStream(sctx, &echopb.EchoRequest{Count: 1}); err != nil {
		require.Fail(t, fmt.Sprintf("silent stream: %v", err))
	}
	testutil.WaitFor(t, "the silent stream to be open on the server", func() bool { return open.Load() == 1 })
	return b, p, client, ctx, open
}

// A backend's breaker opens, the backend recovers, and the first call
// after the open timeout is a silent stream: the half-open breaker's
// probe. The stream gives the probe slot back after
// core.StreamProbeTimeout (1 s) without an answer, so unary calls reach
// the backend again and close its breaker, while the stream stays open.
func TestSilentStreamProbeLetsARecoveredBackendBack(t *testing.T) {
	t.Parallel()
	b, p, client, ctx, open := silentProbe(t)

	// Unary calls reach the backend within a bound well past the probe
	// timeout; before that they are refused (the probe is out).
	start := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	testutil.WaitCtxEvery(t, wctx, 10*time.Millisecond, "a unary call to reach the recovered backend", func() bool {
		_, err := client.Unary(wctx, &echopb.EchoRequest{})
		return err == nil
	})
	t.Logf("first unary call got through %v after the stream probe was placed", time.Since(start).Round(time.Millisecond))
	got := testutil.MustFind(t, p, b.Addr()).Breaker
	assert.EqualValuesf(t, breaker.StateClosed, got, "breaker = %v, want closed", got)
	n := open.Load()
	assert.EqualValuesf(t, 1, n, "silent streams open on the server = %d, want 1", n)
}

// A long-lived stream admitted as a half-open breaker's probe
// reports success as soon as the backend answers it, so the breaker closes
// while the stream stays open. Over bufconn in a synctest bubble: the probe
// is placed while the 50 ms breaker is half-open by the bubble's clock,
// however slow the machine.
func TestStreamProbeClosesBreakerOnFirstResponse(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testStreamProbeClosesBreakerOnFirstResponse)
}

func testStreamProbeClosesBreakerOnFirstResponse(t *testing.T) {
	p, bs, _ := bufFleet(t, 1, pool.WithSize(1),
		pool.WithBreaker(breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: 50 * time.Millisecond}))
	ctx := testutil.ContextFor(t, 10*time.Second)
	c := echopb.NewEchoClient(p)
	bs[0].SetFail(codes.Unavailable)
	_, err := echoUnary(ctx, c)
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Equal(t, breaker.StateOpen, onlyBackend(t, p).Breaker)
	bs[0].SetOK()
	for onlyBackend(t, p).Breaker != breaker.StateHalfOpen {
		require.NoError(t, ctx.Err(), "breaker half-open")
		time.Sleep(5 * time.Millisecond)
	}
	// The probe, open till cleanup. It waits for the pool to offer the
	// half-open backend, then has its echo.
	probe, err := c.Bidi(testutil.ContextFor(t, time.Minute), grpc.WaitForReady(true))
	require.NoError(t, err)
	require.NoError(t, probe.Send(&echopb.EchoRequest{Message: "probe"}))
	_, err = probe.Recv()
	require.NoError(t, err)
	wait := testutil.ContextFor(t, 3*time.Second)
	for st := onlyBackend(t, p).Breaker; st != breaker.StateClosed; st = onlyBackend(t, p).Breaker {
		require.NoError(t, wait.Err(), "the breaker must close once the probe stream was answered; it is %v", st)
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 20 {
		_, err := echoUnary(ctx, c)
		require.NoError(t, err, "call %d to the healed backend", i)
	}
}

// A call with grpc.WaitForReady(true) that the only backend's half-open
// breaker refuses (its probe, a silent stream, is out) waits for it, and
// goes through once the probe gives its slot back: after
// core.StreamProbeTimeout (1 s) without an answer, counted as neither
// success nor failure, so no breaker state changes. Size and max size 1:
// no idle-shrink timer rebuilds the pickers meanwhile.
func TestWaitForReadyCallTakesTheProbeSlotGivenBack(t *testing.T) {
	t.Parallel()
	b, p, client, ctx, _ := silentProbe(t, pool.WithSize(1), pool.WithMaxSize(1))

	// Well past the probe timeout; far below the next re-resolution (30 s).
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	start := time.Now()
	if _, err := client.Unary(wctx, &echopb.EchoRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("WaitForReady call after %v: %v, want it through once the probe slot is given back", time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("the WaitForReady call went through after %v", time.Since(start).Round(time.Millisecond))
	if got := testutil.MustFind(t, p, b.Addr()).Breaker; got != breaker.StateClosed {
		t.Errorf("breaker = %v, want closed", got)
	}
}
