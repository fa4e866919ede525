package lb

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/stats"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/eventq"
	"github.com/grpcpool/grpcpool/internal/testutil"
)

// server is a real Echo backend on loopback that counts the connections
// its clients hold open.
type server struct {
	*backend.Server
	conns *connCounter
}

// connCounter is a server-side stats.Handler counting open connections.
type connCounter struct{ open, total atomic.Int64 }

func (c *connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c *connCounter) HandleConn(_ context.Context, s stats.ConnStats) {
	switch s.(type) {
	case *stats.ConnBegin:
		c.open.Add(1)
		c.total.Add(1)
	case *stats.ConnEnd:
		c.open.Add(-1)
	}
}
func (c *connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c *connCounter) HandleRPC(context.Context, stats.RPCStats)                       {}

// startServers starts n Echo backends named b0, b1, …, with health
// servers, stopped at cleanup.
func startServers(t *testing.T, n int) []*server {
	t.Helper()
	out := make([]*server, n)
	for i := range n {
		cc := &connCounter{}
		s := testutil.StartBackend(t, backend.Options{
			Name:          fmt.Sprintf("b%d", i),
			Health:        true,
			ServerOptions: []grpc.ServerOption{grpc.StatsHandler(cc)},
		})
		out[i] = &server{Server: s, conns: cc}
	}
	return out
}

func addrsOf(ss []*server) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Addr()
	}
	return out
}

func namesOf(ss []*server) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name()
	}
	return out
}

// dial returns a ClientConn over a manual resolver reporting ss, whose
// default service config is sc, closed at cleanup.
func dial(t *testing.T, ss []*server, sc string, opts ...grpc.DialOption) (*grpc.ClientConn, *manual.Resolver) {
	t.Helper()
	r, target := testutil.ManualTarget(addrsOf(ss)...)
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(sc),
	}, opts...)
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	cc.Connect()
	return cc, r
}

// waitConns waits until every server of ss has want connections open.
func waitConns(t *testing.T, ss []*server, want int64) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("%d connections on each server", want), func() bool {
		for _, s := range ss {
			if s.conns.open.Load() != want {
				return false
			}
		}
		return true
	})
}

func openConns(ss []*server) []int64 {
	out := make([]int64, len(ss))
	for i, s := range ss {
		out[i] = s.conns.open.Load()
	}
	return out
}

func unaryOf(ss []*server) []int64 {
	out := make([]int64, len(ss))
	for i, s := range ss {
		out[i] = s.Unary()
	}
	return out
}

func activeOf(ss []*server) []int64 {
	out := make([]int64, len(ss))
	for i, s := range ss {
		out[i] = s.ActiveStreams()
	}
	return out
}

// call makes one unary Echo call within 10 s.
func call(cc grpc.ClientConnInterface, opts ...grpc.CallOption) (*echopb.EchoResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return echopb.NewEchoClient(cc).Unary(ctx, &echopb.EchoRequest{Message: "hi"}, opts...)
}

// mustCall makes n unary calls, failing the test on the first error.
func mustCall(t *testing.T, cc grpc.ClientConnInterface, n int) {
	t.Helper()
	for i := range n {
		if _, err := call(cc); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// fakeTimers stands in for the policy's timers: it records them, and a
// test fires the ones it means, on the policy's event queue, as the real
// timer would.
type fakeTimers struct {
	mu      sync.Mutex // guards pending
	pending []*fakeTimer
}

type fakeTimer struct {
	q       *eventq.Queue
	d       time.Duration
	kind    core.TimerKind
	f       func(time.Time)
	stopped atomic.Bool
}

func (ft *fakeTimers) after(q *eventq.Queue, d time.Duration, kind core.TimerKind, f func(time.Time)) func() bool {
	tm := &fakeTimer{q: q, d: d, kind: kind, f: f}
	ft.mu.Lock()
	ft.pending = append(ft.pending, tm)
	ft.mu.Unlock()
	return func() bool { return !tm.stopped.Swap(true) }
}

// fire runs every pending timer of kind, as the real timer would, and
// returns once the policy has applied them and published what they
// changed; it reports how many it ran.
func (ft *fakeTimers) fire(kind core.TimerKind) int {
	ft.mu.Lock()
	var due []*fakeTimer
	keep := ft.pending[:0]
	for _, tm := range ft.pending {
		switch {
		case tm.stopped.Load():
		case tm.kind == kind:
			due = append(due, tm)
		default:
			keep = append(keep, tm)
		}
	}
	ft.pending = keep
	ft.mu.Unlock()
	return run(due)
}

// live returns the pending timers of kind, not stopped.
func (ft *fakeTimers) live(kind core.TimerKind) []*fakeTimer {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	var out []*fakeTimer
	for _, tm := range ft.pending {
		if tm.kind == kind && !tm.stopped.Load() {
			out = append(out, tm)
		}
	}
	return out
}

// run runs each of tms that has not been stopped (nor run), as the real
// timer would, and returns once the policy has applied them and published
// what they changed; it reports how many it ran.
func run(tms []*fakeTimer) int {
	n := 0
	qs := map[*eventq.Queue]bool{}
	for _, tm := range tms {
		if !tm.stopped.Swap(true) {
			tm.q.Push(tm.f)
			qs[tm.q] = true
			n++
		}
	}
	for q := range qs {
		applied(q)
	}
	return n
}

// applied returns once the policy whose event queue q is has applied, and
// published what they changed, the events pushed on q before the call.
func applied(q *eventq.Queue) {
	// An event pushed by an event lands in a later batch: it runs after
	// the batch with the earlier events has been applied and flushed.
	done := make(chan struct{})
	q.Push(func(time.Time) { q.Push(func(time.Time) { close(done) }) })
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		panic("applied: the policy did not apply its events within 20 s")
	}
}

// count returns how many timers of kind are pending.
func (ft *fakeTimers) count(kind core.TimerKind) int { return len(ft.live(kind)) }

// fakeClock is the time the policy passes its core, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

var testPolicies atomic.Int64

// register registers the policy under a name of its own whose timers ft
// fires (and whose clock is clk, when not nil), and returns the name.
func register(ft *fakeTimers, clk *fakeClock) string {
	name := fmt.Sprintf("grpcpool_test_%d", testPolicies.Add(1))
	bb := builder{name: name, after: ft.after}
	if clk != nil {
		bb.now = clk.now
	}
	balancer.Register(bb)
	return name
}

// serviceConfig is ServiceConfig for the policy registered as name.
func serviceConfig(name string, c Config) string {
	js, _ := c.MarshalJSON()
	return `{"loadBalancingConfig":[{"` + name + `":` + string(js) + `}]}`
}

// gate holds back a server's new connections past its first free ones:
// their TCP handshake completes, but the server neither accepts nor
// answers them until the gate opens, so grpc keeps them CONNECTING.
type gate struct {
	net.Listener
	free    int64
	n       atomic.Int64
	open    chan struct{}
	admit   chan struct{} // each value lets one held connection through
	closed  chan struct{}
	once    sync.Once
	relOnce sync.Once
}

func (g *gate) Accept() (net.Conn, error) {
	c, err := g.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if g.n.Add(1) > g.free {
		select {
		case <-g.open:
		case <-g.admit:
		case <-g.closed:
			_ = c.Close()
			return nil, net.ErrClosed
		}
	}
	return c, nil
}

func (g *gate) Close() error {
	g.once.Do(func() { close(g.closed) })
	return g.Listener.Close()
}

// release lets every held and later connection through; it may be called
// more than once.
func (g *gate) release() { g.relOnce.Do(func() { close(g.open) }) }

// admitOne lets the next held connection through (the one held now, or
// the next to come).
func (g *gate) admitOne() { g.admit <- struct{}{} }

// startGated starts one Echo backend, named b0, whose connections past
// the first free wait for the gate.
func startGated(t *testing.T, free int) (*server, *gate) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{Listener: lis, free: int64(free), open: make(chan struct{}), admit: make(chan struct{}, 8), closed: make(chan struct{})}
	cc := &connCounter{}
	s := backend.Start(g, backend.Options{Name: "b0", ServerOptions: []grpc.ServerOption{grpc.StatsHandler(cc)}})
	t.Cleanup(s.Stop)
	return &server{Server: s, conns: cc}, g
}

// waitAllCalled makes calls (failed ones too) until every server of ss has
// received one: then every backend's connection is READY in the policy,
// not only connected as the servers see it.
func waitAllCalled(t *testing.T, cc grpc.ClientConnInterface, ss []*server) {
	t.Helper()
	testutil.WaitFor(t, "a call on every backend", func() bool {
		_, _ = call(cc)
		for _, s := range ss {
			if s.Unary() == 0 {
				return false
			}
		}
		return true
	})
}
