package pool

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// An attempt is settled once, whatever routes end it and however often
// (gRPC's OnFinish and the pool's own end for one it never saw, a stall
// after the stream ended): a second end releases, counts and reports
// nothing. The breaker opens after two failures, so a second report of
// the one failure would open it.
func TestAttemptEndsOnce(t *testing.T) {
	for _, kind := range []telemetry.Kind{telemetry.KindUnary, telemetry.KindStream} {
		t.Run(kind.String(), func(t *testing.T) {
			srv, err := backend.Listen(backend.Options{})
			require.NoError(t, err)
			t.Cleanup(srv.Stop)
			p, err := New("passthrough:///"+srv.Addr(),
				WithBreaker(breaker.Settings{ConsecutiveFailures: 2}),
				WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
			require.NoError(t, err)
			t.Cleanup(func() { _ = p.Close() })
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			require.NoError(t, p.WaitForReady(ctx))

			var c call
			c.init(p, ctx, echopb.Echo_Unary_FullMethodName, nil)
			var a attempt
			require.NoError(t, c.next(&a, kind))
			a.begin()
			if kind == telemetry.KindStream {
				a.report.Start(a.pk)
			}
			conn := a.pk.Conn
			require.EqualValues(t, 1, conn.Active())

			down := status.Error(codes.Unavailable, "down")
			require.True(t, a.end(down, false), "the first end settles the attempt")
			require.False(t, a.end(down, false), "a second end settled it again")
			require.False(t, a.end(nil, true), "a second end settled it again")

			assert.Zero(t, conn.Active(), "connection released once")
			b := p.Stats().Backends[0]
			assert.Zero(t, b.ActiveCalls)
			assert.Zero(t, b.ActiveStreams)
			assert.EqualValues(t, 1, b.Failures)
			assert.Equal(t, breaker.StateClosed, b.Breaker, "the breaker heard of the failure twice")
		})
	}
}
