package pool_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// The idle shrink counts only connections that can serve:
// of [READY idle, READY idle, failing] above a floor of 2 it must keep both
// READY ones.
func TestIdleShrinkDoesNotCountFailingConnections(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	var d outageDialer
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(2), pool.WithMaxStreamsPerConn(1),
		pool.WithIdleTimeout(50*time.Millisecond), d.option())
	c := echopb.NewEchoClient(p)
	ctx := testutil.ContextFor(t, 10*time.Second)
	first, release := context.WithCancel(ctx)
	defer release()
	testutil.OpenBidi(t, first, c, 2) // both connections at their cap...
	testutil.OpenBidi(t, ctx, c, 1)   // ...so this one grows a third
	for b := onlyBackend(t, p); b.Ready < 3; b = onlyBackend(t, p) {
		require.NoError(t, ctx.Err(), "three ready connections: %+v", b.Conns)
		time.Sleep(5 * time.Millisecond)
	}
	release() // the first two go idle; the third loses its transport and cannot reconnect
	d.fail.Store(true)
	require.NotNil(t, d.conn(2), "the third connection's transport")
	require.NoError(t, d.conn(2).Close())
	for b := onlyBackend(t, p); b.Ready > 2; b = onlyBackend(t, p) {
		require.NoError(t, ctx.Err(), "the third connection failing: %+v", b.Conns)
		time.Sleep(5 * time.Millisecond)
	}
	testutil.Hold(t, 500*time.Millisecond, func() error {
		if b := onlyBackend(t, p); b.Ready < 2 {
			return fmt.Errorf("the idle shrink left %d READY connections next to a failing one, below WithSize(2): %+v", b.Ready, b.Conns)
		}
		return nil
	})
}
