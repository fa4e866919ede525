package pool_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// A grpc.WaitForReady(true) call picked onto a connection
// that dies before gRPC's own pick must not wait inside that connection
// until its deadline while another backend is READY: the pool owns the
// waiting and the call moves to the ready backend.
func TestWaitForReadyCallMovesOffADeadConnection(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	var victim atomic.Pointer[backend.Server]
	var killed atomic.Bool
	peers := testutil.NewConnPeers()
	// Runs inside the picked connection, before gRPC picks a transport:
	// the first call placed on the victim's connection finds it dead.
	kill := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if v := victim.Load(); v != nil && peers.Addr(cc) == v.Addr() && killed.CompareAndSwap(false, true) {
			v.Stop()
			for s := cc.GetState(); s.String() == "READY"; s = cc.GetState() {
				if !cc.WaitForStateChange(ctx, s) {
					break
				}
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1), pool.WithDialOptions(grpc.WithChainUnaryInterceptor(kill, peers.Unary)))
	peers.Learn(t, p)
	c := echopb.NewEchoClient(p)
	victim.Store(bs[0])
	for i := 0; !killed.Load(); i++ {
		require.Less(t, i, 50, "no call was placed on the victim's connection")
		start := time.Now()
		got, err := echoUnary(testutil.ContextFor(t, 3*time.Second), c, grpc.WaitForReady(true))
		require.NoError(t, err, "WaitForReady call %d after %v, with %s READY", i, time.Since(start).Round(time.Millisecond), bs[1].Name())
		require.Equal(t, bs[1].Name(), got)
	}
}

func TestWaitForReadyCallWaitsForABackend(t *testing.T) {
	t.Parallel()
	// Nothing listens behind the port until the server comes up on it.
	port := testutil.NewPort(t)
	addr := port.Addr()
	r, target := testutil.ManualTarget(addr)
	p := testutil.NewPool(t, target, pool.WithResolvers(r))
	client := echopb.NewEchoClient(p)

	// Until the deadline, with nothing listening, a waiting call waits.
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := client.Unary(short, &echopb.EchoRequest{}, grpc.WaitForReady(true)); status.Code(err) != codes.DeadlineExceeded {
		require.Fail(t, fmt.Sprintf("WaitForReady Unary with nothing listening = %v, want DeadlineExceeded", err))
	}

	// A server comes up on the address: the waiting call goes through.
	done := make(chan error, 1)
	go func() {
		_, err := client.Unary(testutil.Context(t), &echopb.EchoRequest{}, grpc.WaitForReady(true))
		done <- err
	}()
	testutil.StartBackendOn(t, port, backend.Options{Name: "late"})
	r.UpdateState(resolver.State{Addresses: testutil.Addrs(addr)}) // nudge nothing: the pool reconnects by itself
	select {
	case err := <-done:
		require.NoErrorf(t, err, "WaitForReady Unary after the server came up: %v", err)
	case <-time.After(25 * time.Second):
		require.Fail(t, "WaitForReady Unary did not complete after the server came up")
	}
}

func TestWaitForReady(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	r, target := testutil.ManualTarget()
	r.InitialState(resolver.State{})
	p := testutil.NewPool(t, target, pool.WithResolvers(r))
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.WaitForReady(short); !errors.Is(err, context.DeadlineExceeded) {
		require.Fail(t, fmt.Sprintf("WaitForReady with no addresses = %v, want DeadlineExceeded", err))
	}
	r.UpdateState(resolver.State{Addresses: testutil.Addrs(bs[0].Addr())})
	if err := p.WaitForReady(testutil.Context(t)); err != nil {
		require.Fail(t, fmt.Sprintf("WaitForReady after an address came: %v", err))
	}
}
