package pool

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/retry"
)

// callsOf is the logical calls the pool's backends counted
// (BackendStats.Calls), in all.
func callsOf(p *Pool) uint64 {
	var n uint64
	for _, b := range p.Stats().Backends {
		n += b.Calls
	}
	return n
}

// A hedged call that fails is counted, as an unhedged one is, on the
// backend of the attempt it ended with: one backend answering
// InvalidArgument (fatal), the hedge finding no other backend.
func TestHedgedCallFailingCountedOnItsBackend(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	bs := startEchoBackends(t, 1)
	method := echopb.Echo_Unary_FullMethodName
	p := newHedgePool(ctx, t, addrsOf(bs),
		WithHedging(retry.Hedging{Delay: time.Millisecond, MaxAttempts: 2, Methods: []string{method}}))
	bs[0].SetFail(codes.InvalidArgument)
	const calls = 3
	for i := range calls {
		err := p.Invoke(ctx, method, &echopb.EchoRequest{Message: "x"}, &echopb.EchoResponse{})
		require.Equal(t, codes.InvalidArgument, status.Code(err), "call %d: %v", i, err)
	}
	assert.EqualValues(t, calls, p.Stats().Backends[0].Calls, "calls counted on the only backend")
}

// bothAnswer is a connection interceptor (it runs once per attempt) that
// plays one hedged call whose two attempts both answer: the first waits
// until the hedge has its answer, then answers too, as a response that
// arrives while the call takes the other one.
type bothAnswer struct {
	n        atomic.Int64
	answered chan struct{} // closed when the hedge has its answer
}

func (s *bothAnswer) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if s.n.Add(1) == 1 {
		<-s.answered
		return nil
	}
	err := invoker(ctx, method, req, reply, cc, opts...)
	close(s.answered)
	return err
}

// A hedged call is one call: when two of its attempts answer, only the
// backend of the answer the call took counts it.
func TestHedgedCallCountedOnceWhenTwoAttemptsAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	bs := startEchoBackends(t, 2)
	method := echopb.Echo_Unary_FullMethodName
	play := &bothAnswer{answered: make(chan struct{})}
	p := newHedgePool(ctx, t, addrsOf(bs),
		WithDialOptions(grpc.WithChainUnaryInterceptor(play.intercept)),
		WithHedging(retry.Hedging{Delay: time.Millisecond, MaxAttempts: 2, Methods: []string{method}}))
	err := p.Invoke(ctx, method, &echopb.EchoRequest{Message: "x"}, &echopb.EchoResponse{})
	require.NoError(t, err)
	require.EqualValues(t, 2, play.n.Load(), "attempts")
	assert.EqualValues(t, 1, callsOf(p), "calls counted for one hedged call: %+v", p.Stats().Backends)
}
