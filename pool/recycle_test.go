package pool_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// A max-age recycle adds the replacement first, so the
// backend has size+1 connections while it waits; the idle scan must not take
// that for a surplus. A backend never has fewer than WithSize ready
// connections, by any path, and recovers from a connect outage.
func TestRecycleKeepsSizeFloorDuringIdleShrink(t *testing.T) {
	t.Parallel()
	opts := []pool.Option{pool.WithMaxConnAge(200 * time.Millisecond), pool.WithIdleTimeout(50 * time.Millisecond)}
	t.Run("size 2, replacements slow to connect", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 1)
		var d outageDialer
		p, _ := testutil.ReadyPool(t, bs, append(opts, pool.WithSize(2), d.option())...)
		d.delay.Store(int64(150 * time.Millisecond)) // longer than the idle timeout
		// Six max ages: every connection is recycled several times.
		testutil.Hold(t, 1200*time.Millisecond, func() error {
			if b := onlyBackend(t, p); b.Ready < 2 {
				return fmt.Errorf("backend has %d ready connections, below WithSize(2): %+v", b.Ready, b.Conns)
			}
			return nil
		})
	})
	t.Run("size 1 through a connect outage", func(t *testing.T) {
		t.Parallel()
		bs := testutil.StartBackends(t, 1)
		var d outageDialer
		p, _ := testutil.ReadyPool(t, bs, append(opts, pool.WithSize(1), d.option())...)
		c := echopb.NewEchoClient(p)
		d.fail.Store(true) // new connections fail; the one made works on
		testutil.Hold(t, time.Second, func() error {
			if b := onlyBackend(t, p); b.Ready < 1 {
				return fmt.Errorf("during a connect outage the backend's working connection was retired: %d ready, conns %+v", b.Ready, b.Conns)
			}
			return nil
		})
		_, err := echoUnary(testutil.ContextFor(t, 2*time.Second), c)
		require.NoError(t, err, "a call during the outage, on the connection that still works")
		d.fail.Store(false)
		ctx := testutil.ContextFor(t, 10*time.Second)
		for onlyBackend(t, p).Ready < 1 {
			require.NoError(t, ctx.Err(), "the pool did not recover after the outage: %+v", onlyBackend(t, p).Conns)
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// Behind one address (a VIP) connections are recycled all
// the time; a call that meets a connection being retired is placed on
// another one, so recycling fails no call, and no message names a breaker
// when none is configured.
func TestRecyclingBehindOneAddressFailsNoCall(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	// A log sink that is slow when a connection starts draining (as one
	// writing to a remote collector may be) widens the moment in which a
	// call meets a connection that is retired but still in its snapshot.
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(2), pool.WithMaxConnAge(20*time.Millisecond),
		pool.WithLogger(slog.New(slowLog{match: "draining", delay: 2 * time.Millisecond})))
	c := echopb.NewEchoClient(p)
	ctx := testutil.ContextFor(t, 20*time.Second)
	var calls, failed atomic.Int64
	var first atomic.Value
	end := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				calls.Add(1)
				if _, err := echoUnary(ctx, c); err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	wg.Wait()
	require.Zero(t, failed.Load(), "%d of %d calls failed during routine recycling, first: %v", failed.Load(), calls.Load(), first.Load())
}

// slowLog is a slog.Handler that discards every record, after a delay
// for those whose message contains match.
type slowLog struct {
	match string
	delay time.Duration
}

func (h slowLog) Enabled(context.Context, slog.Level) bool { return true }

func (h slowLog) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h slowLog) WithGroup(string) slog.Handler { return h }

func (h slowLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		time.Sleep(h.delay)
	}
	return nil
}

// A recycle behind a VIP whose replacement lands on a
// NOT_SERVING server must keep the serving connection: the replacement has
// to be pickable (ready and serving) before the old one retires.
func TestRecycleKeepsServingConnectionWhenReplacementNotServing(t *testing.T) {
	t.Parallel()
	serving, sick := testutil.StartBackend(t, backend.Options{Health: true}), testutil.StartBackend(t, backend.Options{Health: true})
	sick.Health().SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	px := startProxy(t, serving.Addr())
	r, target := testutil.ManualTarget(px.Addr())
	p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1), pool.WithHealthCheck(""),
		pool.WithMaxConnAge(200*time.Millisecond))
	c := echopb.NewEchoClient(p)
	_, err := echoUnary(testutil.ContextFor(t, 10*time.Second), c, grpc.WaitForReady(true))
	require.NoError(t, err)
	px.SetBackends(sick.Addr()) // every new connection lands on the sick server
	moved := time.Now()
	end := moved.Add(1200 * time.Millisecond)
	for i := 0; time.Now().Before(end); i++ {
		got, err := echoUnary(testutil.ContextFor(t, 5*time.Second), c)
		require.NoError(t, err, "call %d, %v after the VIP moved to a NOT_SERVING server; conns %+v", i, time.Since(moved).Round(time.Millisecond), onlyBackend(t, p).Conns)
		require.Equal(t, serving.Name(), got)
	}
}
