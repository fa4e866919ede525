package pool_test

// Review tests whose scenario spans minutes: they run in a synctest bubble,
// over bufconn, so the pool's timers run on the bubble's fake clock.

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// rvBufPool starts an Echo backend on bufconn and a pool whose one
// address, "buf-a", dials it; call it inside a synctest bubble. Both are
// stopped at cleanup.
func rvBufPool(t *testing.T, bo backend.Options, opts ...pool.Option) (*pool.Pool, *manual.Resolver) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := backend.Start(lis, bo)
	t.Cleanup(s.Stop)
	dial := func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }
	r, target := testutil.ManualTarget("buf-a")
	p := testutil.NewPool(t, target, append([]pool.Option{pool.WithResolvers(r),
		pool.WithDialOptions(grpc.WithContextDialer(dial))}, opts...)...)
	return p, r
}

// review item 20: with the default drain timeout, a retired connection
// whose stream the caller abandoned (never cancelled, never read to its
// end) is closed after a finite time, and its removed backend leaves the
// pool. One hour is far beyond any sensible default.
func TestDefaultDrainTimeoutIsFinite(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p, r := rvBufPool(t, backend.Options{}, pool.WithSize(1))
		c := echopb.NewEchoClient(p)
		s, err := c.Bidi(context.Background(), grpc.WaitForReady(true))
		require.NoError(t, err)
		require.NoError(t, s.Send(&echopb.EchoRequest{Message: "x"}))
		_, err = s.Recv()
		require.NoError(t, err)
		// The stream is abandoned; its address goes away.
		r.UpdateState(resolver.State{Addresses: testutil.Addrs("buf-b")})
		time.Sleep(time.Hour)
		synctest.Wait()
		for _, b := range p.Stats().Backends {
			require.False(t, b.Removed, "an hour after its address was removed, backend %s still drains %d connection(s) for an abandoned stream", b.Addr, b.Draining)
		}
	})
}

// review item 19: a connection whose health Watch never answers must not
// stay "starting" for ever: the first health report is bounded, and a
// fail-fast call then gets an answer instead of waiting until its deadline
// (ten minutes here): Unavailable with a message about health, or, if the
// pool chooses to treat a silent health service as serving once the bound
// has passed, a success.
func TestHealthWatchThatNeverAnswersIsBounded(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		mute := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if info.FullMethod == "/grpc.health.v1.Health/Watch" {
				<-ss.Context().Done() // never a report
				return ss.Context().Err()
			}
			return h(srv, ss)
		}
		p, _ := rvBufPool(t, backend.Options{Health: true, ServerOptions: []grpc.ServerOption{grpc.StreamInterceptor(mute)}},
			pool.WithSize(1), pool.WithHealthCheck(""))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		_, err := rvUnary(ctx, echopb.NewEchoClient(p))
		if err != nil {
			require.Equal(t, codes.Unavailable, status.Code(err), "a fail-fast call on a backend whose health never answers: %v", err)
			require.Contains(t, status.Convert(err).Message(), "health")
		}
	})
}
