package pool_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// headerSignal is a client stats handler that closes seen once the
// client has received the response headers of an RPC.
type headerSignal struct {
	seen chan struct{}
	once atomic.Bool
}

func (h *headerSignal) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (h *headerSignal) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (h *headerSignal) HandleConn(context.Context, stats.ConnStats) {}
func (h *headerSignal) HandleRPC(_ context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.InHeader); ok && h.once.CompareAndSwap(false, true) {
		close(h.seen)
	}
}

// A server that sent its response headers, acted on the request, and then
// lost its connection before any status has given no answer: a method not
// marked idempotent is not sent again, so it runs once, and the caller
// sees the broken attempt. Headers are not a status.
func TestRetryDoesNotResendCallAnsweredOnlyWithHeaders(t *testing.T) {
	t.Parallel()
	hs := &headerSignal{seen: make(chan struct{})}
	var executed atomic.Int64
	servers := make([]*backend.Server, 2)
	for i := range servers {
		intercept := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := grpc.SendHeader(ctx, metadata.Pairs("k", "v")); err != nil {
				return nil, err
			}
			executed.Add(1) // the server acts on the request
			// Break the connection once the client holds the headers.
			select {
			case <-hs.seen:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			go servers[i].Stop()
			<-ctx.Done()
			return nil, ctx.Err()
		}
		s, err := backend.Listen(backend.Options{Name: fmt.Sprintf("b%d", i), ServerOptions: []grpc.ServerOption{grpc.UnaryInterceptor(intercept)}})
		require.NoError(t, err)
		t.Cleanup(s.Stop)
		servers[i] = s
	}
	p, _ := testutil.ReadyPool(t, servers, pool.WithSize(1), pool.WithRetry(retry.Policy{}),
		pool.WithDialOptions(grpc.WithStatsHandler(hs)))

	_, err := echoUnary(testutil.ContextFor(t, 10*time.Second), echopb.NewEchoClient(p))
	require.Equal(t, int64(1), executed.Load(), "a non-idempotent call answered only with headers ran again (caller got %v)", err)
	require.Equal(t, codes.Unavailable, status.Code(err), "the caller must see the broken attempt: %v", err)
}

// With WithRetry, a unary attempt whose request reached the
// server, after which the connection broke with no status from the server,
// is not sent again (the method is not marked idempotent): the caller sees
// Unavailable and the method ran once. Attempts the server answered with a
// retryable status of its own are retried as before.
func TestRetryDoesNotResendCallTheServerReceived(t *testing.T) {
	t.Parallel()
	servers, received, cut := crashingServers(t)
	p, _ := testutil.ReadyPool(t, servers, pool.WithSize(1), pool.WithRetry(retry.Policy{}))
	c := echopb.NewEchoClient(p)

	t.Run("server's own Unavailable is retried", func(t *testing.T) {
		servers[0].SetFail(codes.Unavailable)
		defer servers[0].SetOK()
		for i := range 4 {
			got, err := echoUnary(testutil.ContextFor(t, 5*time.Second), c)
			require.NoError(t, err, "call %d", i)
			require.Equal(t, servers[1].Name(), got)
		}
	})
	t.Run("connection broke after the request was sent", func(t *testing.T) {
		received.Store(0)
		cut.Store(true)
		_, err := echoUnary(testutil.ContextFor(t, 5*time.Second), c)
		require.Equal(t, int64(1), received.Load(), "a non-idempotent call the server received was sent again (caller got %v)", err)
		require.Equal(t, codes.Unavailable, status.Code(err), "the caller must see the broken attempt: %v", err)
	})
}

// A method marked idempotent (in the policy, or by a call option) is sent
// again after the connection broke with its request in the server's hands;
// NotRetryable on the call wins.
func TestRetryResendsIdempotentCallTheServerReceived(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		policy   retry.Policy
		opts     []grpc.CallOption
		received int64
		code     codes.Code
	}{
		{"method in Policy.Idempotent", retry.Policy{Idempotent: []string{"/" + echopb.Echo_ServiceDesc.ServiceName + "/"}}, nil, 2, codes.OK},
		{"retry.Idempotent on the call", retry.Policy{}, []grpc.CallOption{retry.Idempotent()}, 2, codes.OK},
		{"retry.NotRetryable on the call", retry.Policy{Idempotent: []string{"/" + echopb.Echo_ServiceDesc.ServiceName + "/"}}, []grpc.CallOption{retry.NotRetryable()}, 1, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers, received, cut := crashingServers(t)
			p, _ := testutil.ReadyPool(t, servers, pool.WithSize(1), pool.WithRetry(tc.policy))
			cut.Store(true)
			_, err := echoUnary(testutil.ContextFor(t, 5*time.Second), echopb.NewEchoClient(p), tc.opts...)
			require.Equal(t, tc.received, received.Load(), "requests the servers received (caller got %v)", err)
			require.Equal(t, tc.code, status.Code(err), "%v", err)
		})
	}
}

// crashingServers starts two backends that count the requests they
// receive; while cut is set, the next one to receive a request crashes
// with it in hand (it stops without answering).
func crashingServers(t *testing.T) ([]*backend.Server, *atomic.Int64, *atomic.Bool) {
	t.Helper()
	received, cut := new(atomic.Int64), new(atomic.Bool)
	servers := make([]*backend.Server, 2)
	for i := range servers {
		intercept := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			received.Add(1)
			if cut.CompareAndSwap(true, false) {
				go servers[i].Stop()
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return h(ctx, req)
		}
		s, err := backend.Listen(backend.Options{Name: fmt.Sprintf("b%d", i), ServerOptions: []grpc.ServerOption{grpc.UnaryInterceptor(intercept)}})
		require.NoError(t, err)
		t.Cleanup(s.Stop)
		servers[i] = s
	}
	return servers, received, cut
}

// A caller's grpc.OnFinish runs once per call, as gRPC
// documents it, also when WithRetry made a second attempt.
func TestOnFinishRunsOncePerRetriedCall(t *testing.T) {
	t.Parallel()
	p, n := sheddingPool(t)
	c := echopb.NewEchoClient(p)
	const calls = 5
	var finished atomic.Int64
	for i := range calls {
		_, err := echoUnary(testutil.ContextFor(t, 5*time.Second), c, grpc.OnFinish(func(error) { finished.Add(1) }))
		require.NoError(t, err, "call %d", i)
	}
	require.EqualValues(t, 2*calls, n.Load(), "attempts the server saw")
	require.EqualValues(t, calls, finished.Load(), "grpc.OnFinish runs of %d calls", calls)
}
