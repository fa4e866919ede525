package pool_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// With the default drain timeout, a retired connection
// whose stream the caller abandoned (never cancelled, never read to its
// end) is closed after a finite time, and its removed backend leaves the
// pool. One hour is far beyond any sensible default.
func TestDefaultDrainTimeoutIsFinite(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p, r := bufPool(t, backend.Options{}, pool.WithSize(1))
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
