package integration

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/integration/harness"
)

// countingFleet is a fleet whose servers count the connections open on
// them: what a policy inside a plain ClientConn makes is seen from the
// servers' side.
type countingFleet struct {
	*fleet
	conns map[string]*connCounter
}

// connCounter is a server-side stats.Handler counting open connections.
type connCounter struct{ open atomic.Int64 }

func (c *connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c *connCounter) HandleConn(_ context.Context, s stats.ConnStats) {
	switch s.(type) {
	case *stats.ConnBegin:
		c.open.Add(1)
	case *stats.ConnEnd:
		c.open.Add(-1)
	}
}
func (c *connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c *connCounter) HandleRPC(context.Context, stats.RPCStats)                       {}

// startCountingFleet starts one Echo backend on each addr, named by its
// address, counting its connections; stopped in t.Cleanup.
func startCountingFleet(t *testing.T, addrs ...string) *countingFleet {
	t.Helper()
	f := &countingFleet{
		fleet: &fleet{addrs: slices.Clone(addrs), servers: make(map[string]*backend.Server)},
		conns: make(map[string]*connCounter),
	}
	for _, a := range addrs {
		lis, err := net.Listen("tcp4", a)
		if err != nil {
			t.Fatalf("listen %s: %v", a, err)
		}
		cc := &connCounter{}
		s := backend.Start(lis, backend.Options{Name: a, ServerOptions: []grpc.ServerOption{grpc.StatsHandler(cc)}})
		t.Cleanup(s.Stop)
		f.servers[a], f.conns[a] = s, cc
	}
	return f
}

// waitConns waits until every backend of addrs has n connections open.
func (f *countingFleet) waitConns(t *testing.T, addrs []string, n int64) {
	t.Helper()
	harness.Eventually(t, waitLong, fmt.Sprintf("%d connections on each of %v", n, addrs), func() error {
		for _, a := range addrs {
			if got := f.conns[a].open.Load(); got != n {
				return fmt.Errorf("%s has %d connections", a, got)
			}
		}
		return nil
	})
}

// callOnce makes one unary Echo call within callTimeout.
func callOnce(cc grpc.ClientConnInterface) (*echopb.EchoResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return echopb.NewEchoClient(cc).Unary(ctx, &echopb.EchoRequest{Message: "hi"})
}
