package testutil

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/pool"
)

// ConnPeers learns which backend each connection of a pool reaches, for
// interceptors (given in pool.WithDialOptions) that act on the connections
// to one backend: every pool connection is named after the pool's target,
// so its *grpc.ClientConn is the only thing that tells them apart.
// Unary records the peer of each unary call by the connection that made it.
type ConnPeers struct {
	mu    sync.Mutex // guards peers
	peers map[*grpc.ClientConn]string
}

// NewConnPeers returns an empty ConnPeers.
func NewConnPeers() *ConnPeers {
	return &ConnPeers{peers: make(map[*grpc.ClientConn]string)}
}

// Unary is a unary client interceptor recording, for cc, the address of
// the server that took the call.
func (c *ConnPeers) Unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var pr peer.Peer
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Peer(&pr))...)
	if pr.Addr != nil {
		c.mu.Lock()
		c.peers[cc] = pr.Addr.String()
		c.mu.Unlock()
	}
	return err
}

// Addr returns the address of the backend cc reaches, or "" when no call
// has told yet.
func (c *ConnPeers) Addr(cc *grpc.ClientConn) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peers[cc]
}

// Learn makes unary calls through p until every ready connection of p
// has carried one (WaitFor).
func (c *ConnPeers) Learn(t testing.TB, p *pool.Pool) {
	t.Helper()
	client := echopb.NewEchoClient(p)
	ctx := Context(t)
	WaitFor(t, "a call on every ready connection", func() bool {
		if _, err := client.Unary(ctx, &echopb.EchoRequest{Message: "learn"}); err != nil {
			t.Fatalf("Unary: %v", err)
		}
		var ready int
		for _, b := range p.Stats().Backends {
			ready += b.Ready
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.peers) >= ready
	})
}
