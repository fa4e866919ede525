package pool_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// slowCreds are per-RPC credentials whose token fetch takes 300 ms for
// every call, one fetch at a time: every NewStream waits on them before
// gRPC asks the transport for a stream.
type slowCreds struct{ mu sync.Mutex }

func (c *slowCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	return map[string]string{"authorization": "Bearer t"}, nil
}

func (*slowCreds) RequireTransportSecurity() bool { return false }

// NewStreams that wait on per-RPC credentials, not on the server's stream
// quota, teach nothing: a server with no stream limit gets streams opened
// concurrently through slow credentials, and the pool learns no limit and
// adds no connection.
func TestStreamLimitNotLearnedFromSlowCredentials(t *testing.T) {
	t.Parallel()
	b := testutil.StartBackend(t, backend.Options{})
	p, _ := testutil.ReadyPool(t, []*backend.Server{b}, pool.WithSize(1),
		pool.WithDialOptions(grpc.WithPerRPCCredentials(&slowCreds{})))
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	first, err := client.Bidi(ctx)
	require.NoError(t, err)
	defer func() { _ = first.CloseSend() }()
	const n = 4
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			s, err := client.Bidi(ctx)
			if err != nil {
				errs <- err
				return
			}
			_ = s.CloseSend()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.Fail(t, fmt.Sprintf("stream: %v", err))
	}
	st := testutil.MustFind(t, p, b.Addr())
	assert.Zerof(t, st.StreamLimit, "StreamLimit = %d learned from credentials delays; the server has none", st.StreamLimit)
	assert.EqualValuesf(t, 1, len(st.Conns), "%d connections, want 1: the pool grew for a limit the server does not have", len(st.Conns))
}

// A NewStream the server has admitted is not given up by the stall timer,
// however long it takes to return: here a client interceptor holds it for
// 300 ms after gRPC made it, past a 100 ms stall timeout, on a connection
// that carries another stream. The server sees each stream begin once.
func TestStallTimerSparesAStreamTheServerAdmitted(t *testing.T) {
	t.Parallel()
	b := testutil.StartBackend(t, backend.Options{})
	var held atomic.Int64
	slowReturn := grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
		method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err == nil && held.Add(1) == 2 {
			time.Sleep(300 * time.Millisecond) // after the server admitted it
		}
		return cs, err
	})
	p, _ := testutil.ReadyPool(t, []*backend.Server{b}, pool.WithSize(1),
		pool.WithStreamStallTimeout(100*time.Millisecond), pool.WithDialOptions(slowReturn))
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	streams := testutil.OpenBidi(t, ctx, client, 2)
	for _, s := range streams {
		_ = s.CloseSend()
	}
	n := b.Streams()
	assert.EqualValuesf(t, 2, n, "the server saw %d streams begin for 2 opened: an admitted one was given up and placed again", n)
}

// delayedCreds is a PerRPCCredentials whose GetRequestMetadata takes delay:
// a token refresh.
type delayedCreds struct{ delay atomic.Int64 }

func (c *delayedCreds) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if d := time.Duration(c.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, nil
}

func (c *delayedCreds) RequireTransportSecurity() bool { return false }

// A NewStream slower than the stall timeout because of a
// credential refresh or a slow interceptor, while other streams are open, is
// no evidence of the server's MAX_CONCURRENT_STREAMS: no limit is learned,
// the backend does not grow, and the slow stream is the caller's.
func TestStreamLimitNotLearnedFromSlowCredentialsOrInterceptor(t *testing.T) {
	t.Parallel()
	const stall = 100 * time.Millisecond
	delay := &delayedCreds{}
	slowIntercept := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if _, err := delay.GetRequestMetadata(ctx); err != nil {
			return nil, err
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
	for name, dial := range map[string]grpc.DialOption{
		"credentials": grpc.WithPerRPCCredentials(delay),
		"interceptor": grpc.WithStreamInterceptor(slowIntercept),
	} {
		t.Run(name, func(t *testing.T) {
			delay.delay.Store(0)
			bs := testutil.StartBackends(t, 1) // no MAX_CONCURRENT_STREAMS set
			p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1), pool.WithStreamStallTimeout(stall), pool.WithDialOptions(dial))
			ctx := testutil.ContextFor(t, 10*time.Second)
			c := echopb.NewEchoClient(p)
			testutil.OpenBidi(t, ctx, c, 2)
			delay.delay.Store(int64(3 * stall))
			slow := testutil.OpenBidi(t, ctx, c, 1)[0]
			delay.delay.Store(0)
			require.NoError(t, slow.Send(&echopb.EchoRequest{Message: "again"}), "the slow stream must stay the caller's")
			_, err := slow.Recv()
			require.NoError(t, err, "the slow stream must stay the caller's")
			b := onlyBackend(t, p)
			require.Zero(t, b.StreamLimit, "a stream limit was learned from a slow %s; the server sets none", name)
			require.Equal(t, 1, b.Ready+b.Connecting, "the backend grew although no connection was full: %+v", b.Conns)
			require.EqualValues(t, 3, bs[0].ActiveStreams(), "streams open on the server")
		})
	}
}
