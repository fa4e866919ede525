package pool

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/example/echopb"
	echobackend "github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/retry"
)

// The glue between the pool's picker and the hedging engine, on real
// backends: with one backend black-holed, every hedged call is answered
// by the other one (its first attempt or its hedge), the black-holed
// attempts are cancelled, and a call never hedges onto a backend it
// already tried.
func TestInvokeHedged(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	bs := startEchoBackends(t, 2)
	method := echopb.Echo_Unary_FullMethodName
	p := newHedgePool(ctx, t, addrsOf(bs),
		WithRetry(retry.Policy{}),
		WithHedging(retry.Hedging{Delay: 5 * time.Millisecond, MaxAttempts: 3, Methods: []string{method}}))

	mc := p.o.methods.ForCall(method, nil)
	require.NotNil(t, mc.Hedging)
	bs[0].SetBlackHole()
	const calls = 20
	for i := range calls {
		reply := &echopb.EchoResponse{}
		err := invokeHedged(ctx, p, mc, method, &echopb.EchoRequest{Message: "x"}, reply)
		require.NoError(t, err, "call %d", i)
		assert.Equal(t, "b1", reply.GetBackend(), "call %d", i)
	}
	assert.Positive(t, bs[0].Unary(), "no first attempt went to the black-holed backend")
	// A call that started on b1 answers before the delay, or hedges to
	// b0 and is still answered by b1: b1 gets every call, b0 no more
	// attempts than calls (MaxAttempts 3, but only 2 backends to try).
	assert.EqualValues(t, calls, bs[1].Unary())
	assert.LessOrEqual(t, bs[0].Unary(), int64(calls))
	for _, b := range p.Stats().Backends {
		assert.Zero(t, b.ActiveCalls, "calls left on %s: the losers were not cancelled", b.Addr)
	}
}

// invokeHedged makes a unary call of method on p, hedged by mc whatever
// the pool's configuration, as Invoke makes a hedged method's call (without
// the pool-level interceptors and the call's end).
func invokeHedged(ctx context.Context, p *Pool, mc retry.MethodConfig, method string, args, reply any) error {
	var c call
	c.init(p, ctx, method, nil)
	c.mc = mc
	return hedged(&c, args, reply)
}

// startEchoBackends starts n Echo backends named b0, b1, …, stopped at
// cleanup.
func startEchoBackends(t *testing.T, n int) []*echobackend.Server {
	t.Helper()
	bs := make([]*echobackend.Server, n)
	for i := range bs {
		s, err := echobackend.Listen(echobackend.Options{Name: fmt.Sprintf("b%d", i)})
		require.NoError(t, err)
		t.Cleanup(s.Stop)
		bs[i] = s
	}
	return bs
}

// newHedgePool returns a ready pool of one connection per address.
func newHedgePool(ctx context.Context, t *testing.T, addrs []string, opts ...Option) *Pool {
	t.Helper()
	r := manual.NewBuilderWithScheme(fmt.Sprintf("hedgetest%d", hedgeSchemes.Add(1)))
	var st resolver.State
	for _, a := range addrs {
		st.Addresses = append(st.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(st)
	opts = append([]Option{WithResolvers(r), WithSize(1),
		WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials()))}, opts...)
	p, err := New(r.Scheme()+":///echo", opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	for !allReady(p.Stats(), len(addrs)) {
		select {
		case <-ctx.Done():
			require.Fail(t, fmt.Sprintf("connections not ready: %+v", p.Stats()))
		case <-time.After(5 * time.Millisecond):
		}
	}
	return p
}

var hedgeSchemes atomic.Int64

func addrsOf(bs []*echobackend.Server) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Addr())
	}
	return out
}

func allReady(st Stats, n int) bool {
	if len(st.Backends) != n {
		return false
	}
	for _, b := range st.Backends {
		if b.Ready == 0 {
			return false
		}
	}
	return true
}

// notSentOnce is a connection interceptor (it runs once per attempt) that
// plays one hedged call: attempt 1 gets no answer until it is cancelled,
// the hedge's first placement finds its connection not ready (as when
// the connection leaves READY under the pick: nothing is sent), and every
// later placement goes through. It counts the placements.
type notSentOnce struct{ n atomic.Int64 }

func (s *notSentOnce) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	switch s.n.Add(1) {
	case 1:
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	case 2:
		return status.Error(codes.Unavailable, msgConnNotReady)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// A hedge whose request was not sent (its connection left READY under the
// pick) is placed again, and may go to the backend it had picked: nothing
// reached that backend, so the call has not tried it.
func TestHedgePlacedAgainAfterNotSent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	bs := startEchoBackends(t, 2)
	method := echopb.Echo_Unary_FullMethodName
	var play notSentOnce
	p := newHedgePool(ctx, t, addrsOf(bs), WithSize(2),
		WithDialOptions(grpc.WithChainUnaryInterceptor(play.intercept)),
		WithHedging(retry.Hedging{Delay: time.Millisecond, MaxAttempts: 2, Methods: []string{method}}))
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	reply := &echopb.EchoResponse{}
	err := p.Invoke(cctx, method, &echopb.EchoRequest{Message: "x"}, reply)
	require.NoError(t, err, "the hedge gave up after a placement that sent nothing (%d placements)", play.n.Load())
	assert.EqualValues(t, 3, play.n.Load(), "placements: attempt 1, the hedge not sent, the hedge again")
	assert.NotEmpty(t, reply.GetBackend())
}

type playKey struct{}

// notSentAfter is a connection interceptor that plays the first attempt
// of calls marked with playKey: it gives the call's hedge time to begin
// its pick, then reports the attempt not sent (its connection left READY
// under the pick). Every other attempt goes through.
type notSentAfter struct {
	wait time.Duration
	n    atomic.Int64
}

func (s *notSentAfter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if ctx.Value(playKey{}) == nil || s.n.Add(1) > 1 {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return status.Error(codes.Unavailable, msgConnNotReady)
}

// The attempts of a hedged call pick apart: a hedge whose pick waits
// (grpc.WaitForReady, the only backend half-open with the call's first
// attempt as its probe) does not keep that first attempt, placed again
// after its request was not sent, from being placed.
func TestHedgePickDoesNotHoldBackOtherAttempts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	bs := startEchoBackends(t, 1)
	method := echopb.Echo_Unary_FullMethodName
	play := &notSentAfter{wait: 200 * time.Millisecond}
	p := newHedgePool(ctx, t, addrsOf(bs),
		WithDialOptions(grpc.WithChainUnaryInterceptor(play.intercept)),
		WithBreaker(breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: 20 * time.Millisecond}),
		WithHedging(retry.Hedging{Delay: time.Millisecond, MaxAttempts: 2, Methods: []string{method}}))
	bs[0].SetFail(codes.Unavailable)
	err := p.Invoke(ctx, method, &echopb.EchoRequest{Message: "x"}, &echopb.EchoResponse{})
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	bs[0].SetOK()
	for p.Stats().Backends[0].Breaker != breaker.StateHalfOpen {
		require.NoError(t, ctx.Err(), "breaker half-open")
		time.Sleep(5 * time.Millisecond)
	}

	cctx, ccancel := context.WithTimeout(context.WithValue(ctx, playKey{}, true), 5*time.Second)
	defer ccancel()
	err = p.Invoke(cctx, method, &echopb.EchoRequest{Message: "x"}, &echopb.EchoResponse{}, grpc.WaitForReady(true))
	require.NoError(t, err, "the first attempt, placed again, waited for the hedge's pick (%d placements)", play.n.Load())
}
