package pool_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// slowGrowthPool starts an Echo backend on bufconn and a pool of size 1
// over it, one stream a connection, up to 3 connections; every dial but
// the first takes growDial (of the synctest bubble's time, so exactly
// that). Call it inside a bubble; the pool is ready when it returns.
func slowGrowthPool(t *testing.T, growDial time.Duration) *pool.Pool {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := backend.Start(lis, backend.Options{})
	t.Cleanup(s.Stop)
	var dials atomic.Int64
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		if dials.Add(1) > 1 {
			select {
			case <-time.After(growDial):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return lis.DialContext(ctx)
	}
	r, target := testutil.ManualTarget("buf-a")
	p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithDialOptions(grpc.WithContextDialer(dial)),
		pool.WithSize(1), pool.WithMaxSize(3), pool.WithMaxStreamsPerConn(1))
	require.NoError(t, p.WaitForReady(t.Context()))
	return p
}

// openAt opens a Bidi stream through p on ctx and returns when its
// NewStream returned, in the bubble's time since start.
func openAt(ctx context.Context, p *pool.Pool, start time.Time) (time.Duration, error) {
	_, err := echopb.NewEchoClient(p).Bidi(ctx)
	return time.Since(start), err
}

// Each growth a stream waits for is bounded by growWait (5 s) on its own,
// not all of them together. Two streams wait on a backend whose only
// connection is full; every growth takes 4 s. The first growth's
// connection takes one of them; the other waits for a second growth, 8 s
// after it began to wait, and takes that connection rather than overflow
// onto a full one.
func TestStreamWaitsForEachGrowthInTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := slowGrowthPool(t, 4*time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		_, err := openAt(ctx, p, time.Now())
		require.NoError(t, err)
		start := time.Now()
		var mu sync.Mutex
		var at []time.Duration
		var errs []error
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				d, err := openAt(ctx, p, start)
				mu.Lock()
				defer mu.Unlock()
				at = append(at, d)
				if err != nil {
					errs = append(errs, err)
				}
			})
		}
		wg.Wait()
		require.Emptyf(t, errs, "streams failed: %v", errs)
		slices.Sort(at)
		require.Equalf(t, []time.Duration{4 * time.Second, 8 * time.Second}, at, "streams placed at %v, want at 4 s and 8 s", at)
		b := onlyBackend(t, p)
		require.Lenf(t, b.Conns, 3, "connections: %+v", b.Conns)
		for _, c := range b.Conns {
			require.EqualValuesf(t, 1, c.Active, "connection %d carries %d streams, want 1 (limit 1)", c.ID, c.Active)
		}
	})
}

// A growth slower than growWait is waited for growWait: the stream then
// overflows onto the full connection.
func TestStreamOverflowsWhenAGrowthOutlastsGrowWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := slowGrowthPool(t, time.Minute)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		_, err := openAt(ctx, p, time.Now())
		require.NoError(t, err)
		start := time.Now()
		got, err := openAt(ctx, p, start)
		require.NoError(t, err)
		require.Equalf(t, 5*time.Second, got, "overflow after %v, want 5 s", got)
		b := onlyBackend(t, p)
		require.EqualValuesf(t, 2, b.ActiveStreams, "active streams %d, want 2", b.ActiveStreams)
	})
}

// A growth that fails does not restart the wait for another that is under
// way: two full backends grow at once; a's growth dial hangs, b's fail at
// once, and b grows again after each backoff (1, 2 and 4 s). None of b's
// growths lands, so the stream overflows growWait after it began to wait.
func TestFailedGrowthsDoNotRestartTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lisA, lisB := bufconn.Listen(1<<20), bufconn.Listen(1<<20)
		for _, lis := range []*bufconn.Listener{lisA, lisB} {
			s := backend.Start(lis, backend.Options{})
			t.Cleanup(s.Stop)
		}
		var dialsA, dialsB atomic.Int64
		dial := func(ctx context.Context, addr string) (net.Conn, error) {
			if addr == "buf-a" {
				if dialsA.Add(1) > 1 {
					select {
					case <-time.After(time.Minute):
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
				return lisA.DialContext(ctx)
			}
			if dialsB.Add(1) > 1 {
				return nil, errors.New("connection refused")
			}
			return lisB.DialContext(ctx)
		}
		r, target := testutil.ManualTarget("buf-a", "buf-b")
		p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithDialOptions(grpc.WithContextDialer(dial)),
			pool.WithSize(1), pool.WithMaxSize(3), pool.WithMaxStreamsPerConn(1))
		require.NoError(t, p.WaitForReady(t.Context()))
		synctest.Wait() // both backends' first connections are ready
		for _, b := range p.Stats().Backends {
			require.Equalf(t, 1, b.Ready, "backend %s has %d connections ready, want 1", b.Addr, b.Ready)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		for range 2 { // one stream on each backend's only connection
			_, err := openAt(ctx, p, time.Now())
			require.NoError(t, err)
		}
		for _, b := range p.Stats().Backends {
			require.EqualValuesf(t, 1, b.ActiveStreams, "backend %s carries %d streams, want 1", b.Addr, b.ActiveStreams)
		}
		got, err := openAt(ctx, p, time.Now())
		require.NoError(t, err)
		require.GreaterOrEqualf(t, dialsB.Load(), int64(4), "b's growth dials: %d, want its first and three retries", dialsB.Load())
		require.Equalf(t, 5*time.Second, got, "overflow after %v, want 5 s", got)
	})
}
