package pool_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

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
