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

	_, err := rvUnary(testutil.ContextFor(t, 10*time.Second), echopb.NewEchoClient(p))
	require.Equal(t, int64(1), executed.Load(), "a non-idempotent call answered only with headers ran again (caller got %v)", err)
	require.Equal(t, codes.Unavailable, status.Code(err), "the caller must see the broken attempt: %v", err)
}
