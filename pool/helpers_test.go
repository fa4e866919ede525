package pool_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/test/bufconn"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

func activeStreams(p *pool.Pool) int64 {
	var n int64
	for _, b := range p.Stats().Backends {
		n += b.ActiveStreams
	}
	return n
}

func activeCalls(p *pool.Pool) int64 {
	var n int64
	for _, b := range p.Stats().Backends {
		n += b.ActiveCalls
	}
	return n
}

// serverStreams returns the streams open on each backend, counted on the
// servers.
func serverStreams(bs []*backend.Server) []int64 {
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.ActiveStreams()
	}
	return out
}

// onlyBackend returns the stats of the pool's only backend.
func onlyBackend(t testing.TB, p *pool.Pool) pool.BackendStats {
	t.Helper()
	bs := p.Stats().Backends
	require.Len(t, bs, 1, "backends in Stats")
	return bs[0]
}

// echoUnary makes one Echo unary call and returns the name of the backend
// that answered.
func echoUnary(ctx context.Context, c echopb.EchoClient, opts ...grpc.CallOption) (string, error) {
	r, err := c.Unary(ctx, &echopb.EchoRequest{Message: "x"}, opts...)
	return r.GetBackend(), err
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	if err == nil {
		return errors.New("answered by the wrong backend")
	}
	return err
}

// bufPool starts an Echo backend on bufconn and a pool whose one
// address, "buf-a", dials it (as does any address it is given later); call it inside a synctest bubble. Both are
// stopped at cleanup.
func bufPool(t *testing.T, bo backend.Options, opts ...pool.Option) (*pool.Pool, *manual.Resolver) {
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

// bufFleet starts n Echo backends on bufconn, named b0, b1, ..., and a
// pool over their addresses, "buf-0", "buf-1", ..., in that order, and
// waits until each has a ready connection. Call it inside a synctest
// bubble, where the backends' and the pool's timers run on the bubble's
// clock. Both are stopped at cleanup.
func bufFleet(t *testing.T, n int, opts ...pool.Option) (*pool.Pool, []*backend.Server, []string) {
	t.Helper()
	bos := make(map[string]backend.Options, n)
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("buf-%d", i)
		bos[addrs[i]] = backend.Options{Name: fmt.Sprintf("b%d", i)}
	}
	dial, servers := bufServe(t, bos)
	r, target := testutil.ManualTarget(addrs...)
	p := testutil.NewPool(t, target, append([]pool.Option{pool.WithResolvers(r), dial}, opts...)...)
	testutil.WaitReady(t, p, n)
	bs := make([]*backend.Server, n)
	for i, a := range addrs {
		bs[i] = servers[a]
	}
	return p, bs, addrs
}

// bufServe starts an Echo backend on bufconn for each address of bos,
// stopped at cleanup, and returns the dial option that reaches them by
// address, and the backends by address.
func bufServe(t *testing.T, bos map[string]backend.Options) (pool.Option, map[string]*backend.Server) {
	t.Helper()
	lis := make(map[string]*bufconn.Listener, len(bos))
	servers := make(map[string]*backend.Server, len(bos))
	for addr, bo := range bos {
		l := bufconn.Listen(1 << 20)
		s := backend.Start(l, bo)
		t.Cleanup(s.Stop)
		lis[addr], servers[addr] = l, s
	}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		l, ok := lis[addr]
		if !ok {
			return nil, fmt.Errorf("no bufconn backend at %q", addr)
		}
		return l.DialContext(ctx)
	}
	return pool.WithDialOptions(grpc.WithContextDialer(dial)), servers
}
