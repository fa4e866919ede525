package pool_test

import (
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// A backend whose server ends every connection after 300 ms (its max
// connection age: a GOAWAY, and the pool's connection reconnects, READY,
// CONNECTING, READY) has not come back from a failure: with slow start
// on, once both backends are warm it keeps its full share of calls, not
// the 10 % a new ramp would start it at.
func TestSlowStartKeepsShareAcrossServerGoaway(t *testing.T) {
	t.Parallel()
	const window = time.Second
	aged := testutil.StartBackend(t, backend.Options{ServerOptions: []grpc.ServerOption{grpc.KeepaliveParams(keepalive.ServerParameters{
		MaxConnectionAge: 300 * time.Millisecond, MaxConnectionAgeGrace: time.Second,
	})}})
	other := testutil.StartBackend(t, backend.Options{})
	p, _ := testutil.ReadyPool(t, []*backend.Server{aged, other}, pool.WithSize(1), pool.WithSlowStart(window))
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	time.Sleep(window + window/2) // both warm; the aged one has reconnected several times
	before := aged.Unary()
	const calls = 400
	for i := range calls {
		if _, err := client.Unary(ctx, &echopb.EchoRequest{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	share := float64(aged.Unary()-before) / calls
	t.Logf("the reconnecting backend's share: %.2f", share)
	if share < 0.35 {
		t.Errorf("the reconnecting backend took %.2f of the calls, want about 0.5: its slow start restarted", share)
	}
}
