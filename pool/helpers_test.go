package pool_test

import (
	"context"
	"errors"
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
// address, "buf-a", dials it; call it inside a synctest bubble. Both are
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
