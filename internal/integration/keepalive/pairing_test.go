// Package keepalive runs the real-time keepalive pairing tests of package
// github.com/grpcpool/grpcpool/keepalive. They live in the integration
// module, which .ci/run runs, because grpc-go's minimum client ping
// interval of 10 s makes them take about 40 s: too long for the SDK's
// default "go test ./...". TestComputedParameters, in the keepalive
// package, checks every computed value in milliseconds.
package keepalive

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"

	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/keepalive"
)

// These tests run real grpc-go keepalive over loopback TCP. grpc-go does not
// let a client ping more often than every 10s, so each takes 30-40s of wall
// time; they run in parallel, and are skipped under -short, where
// TestComputedParameters (package keepalive, SDK module) still checks every
// computed value.

// pairingTimeout bounds each test. The matched test needs ~40s (4 pings 10s
// apart); the mismatched one expects GOAWAY at the third keepalive ping, ~30s.
const pairingTimeout = 75 * time.Second

func TestMatchedPairKeepsIdleConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ~40s of real keepalive pings; TestComputedParameters covers the values")
	}
	t.Parallel()

	cfg := keepalive.Config{Time: 10 * time.Second, Timeout: 5 * time.Second}
	p := startPair(t, cfg, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), pairingTimeout)
	defer cancel()

	p.check(ctx, t)
	start := time.Now()

	// A mismatched server sends GOAWAY at the third keepalive ping (see
	// TestMismatchedPairGetsTooManyPings); stay idle for one more.
	const wantPings = 4
	testutil.WaitCtxEvery(t, ctx, 100*time.Millisecond, "4 keepalive pings on the idle connection", func() bool {
		r := p.onlyConn(t)
		if len(r.goAways) > 0 || r.closed {
			t.Fatalf("after %v and %d keepalive pings: server sent GOAWAY %+v, closed = %v; want neither",
				time.Since(start).Round(time.Second), r.keepalivePings, r.goAways, r.closed)
		}
		return r.keepalivePings >= wantPings
	})
	idle := time.Since(start)
	if got := p.cc.GetState(); got != connectivity.Ready {
		t.Errorf("client state after %v idle = %v, want READY", idle.Round(time.Second), got)
	}

	p.check(ctx, t)

	r := p.onlyConn(t) // still the one connection the first RPC used
	if len(r.goAways) > 0 || r.closed {
		t.Errorf("server sent GOAWAY %+v, closed = %v; want neither", r.goAways, r.closed)
	}
	if begins, ends := p.stats.begins.Load(), p.stats.ends.Load(); begins != 1 || ends != 0 {
		t.Errorf("client ConnBegin, ConnEnd = %d, %d, want 1, 0", begins, ends)
	}
	t.Logf("connection stayed READY for %v idle with %d keepalive pings; RPC after it succeeded on the same connection",
		idle.Round(100*time.Millisecond), r.keepalivePings)
}

func TestMismatchedPairGetsTooManyPings(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ~30s of real keepalive pings; TestComputedParameters covers the values")
	}
	t.Parallel()

	// The server enforces MinTime 2m30s; the client pings every 10s.
	server := keepalive.Config{Time: 5 * time.Minute}
	client := keepalive.Config{Time: 10 * time.Second}
	p := startPair(t, server, client)
	ctx, cancel := context.WithTimeout(t.Context(), pairingTimeout)
	defer cancel()

	p.check(ctx, t)
	start := time.Now()

	var r connReport
	testutil.WaitCtxEvery(t, ctx, 100*time.Millisecond, "GOAWAY ENHANCE_YOUR_CALM too_many_pings and the connection closed", func() bool {
		r = p.onlyConn(t)
		return r.tooManyPings() && r.closed && p.stats.ends.Load() >= 1
	})
	t.Logf("server sent GOAWAY %+v and closed the connection %v after the first RPC, after %d keepalive pings",
		r.goAways, time.Since(start).Round(100*time.Millisecond), r.keepalivePings)
}

// pair is a real server on 127.0.0.1:0 and a client connected to it.
type pair struct {
	lis   *tapListener
	cc    *grpc.ClientConn
	stats *connCounter // the client's connections
}

// startPair starts a health server configured from server and a client
// configured from client; both are stopped when the test ends.
func startPair(t *testing.T, server, client keepalive.Config) *pair {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen: %v", err)
	}
	lis := &tapListener{Listener: l}
	srv := grpc.NewServer(server.ServerOptions()...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis) // returns when Stop closes the listener
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})

	counter := &connCounter{}
	cc, err := grpc.NewClient("passthrough:///"+l.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(counter),
		client.DialOption(),
	)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() }) // runs before the server's cleanup
	return &pair{lis: lis, cc: cc, stats: counter}
}

// check makes one health-check RPC and fails the test if it does not succeed.
func (p *pair) check(ctx context.Context, t *testing.T) {
	t.Helper()
	rpcCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(p.cc).Check(rpcCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got, want := resp.GetStatus(), healthpb.HealthCheckResponse_SERVING; got != want {
		t.Fatalf("Check status = %v, want %v", got, want)
	}
}

// onlyConn returns the report of the server's only connection, and fails
// the test if it has accepted any other number of them.
func (p *pair) onlyConn(t *testing.T) connReport {
	t.Helper()
	rs := p.lis.reports()
	if len(rs) != 1 {
		t.Fatalf("server accepted %d connections, want 1", len(rs))
	}
	return rs[0]
}

// connCounter is a client stats.Handler counting transport connections
// begun and ended. It is safe for concurrent use.
type connCounter struct {
	begins, ends atomic.Int32
}

var _ stats.Handler = (*connCounter)(nil)

func (c *connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c *connCounter) HandleRPC(context.Context, stats.RPCStats)                       {}
func (c *connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (c *connCounter) HandleConn(_ context.Context, s stats.ConnStats) {
	switch s.(type) {
	case *stats.ConnBegin:
		c.begins.Add(1)
	case *stats.ConnEnd:
		c.ends.Add(1)
	}
}

// tapListener records every byte the server reads and writes on each
// accepted connection, so a test can see the HTTP/2 frames on the wire. It
// is safe for concurrent use.
type tapListener struct {
	net.Listener
	mu    sync.Mutex // guards conns
	conns []*tapConn
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &tapConn{Conn: c}
	l.mu.Lock()
	l.conns = append(l.conns, tc)
	l.mu.Unlock()
	return tc, nil
}

// reports returns a report per accepted connection, in accept order.
func (l *tapListener) reports() []connReport {
	l.mu.Lock()
	conns := append([]*tapConn(nil), l.conns...)
	l.mu.Unlock()
	rs := make([]connReport, len(conns))
	for i, c := range conns {
		rs[i] = c.report()
	}
	return rs
}

// tapConn is a server-side connection that keeps a copy of its traffic.
type tapConn struct {
	net.Conn
	mu      sync.Mutex // guards read, written, closed
	read    []byte     // from the client: the connection preface, then frames
	written []byte     // to the client: frames
	closed  bool
}

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.read = append(c.read, b[:n]...)
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	c.written = append(c.written, b[:n]...)
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.Conn.Close()
}

// HTTP/2 wire constants (RFC 9113).
const (
	clientPreface          = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	frameHeaderLen         = 9
	framePing              = 0x6
	frameGoAway            = 0x7
	flagAck                = 0x1
	errCodeEnhanceYourCalm = 0xb
)

// connReport is what one connection's traffic shows.
type connReport struct {
	keepalivePings int      // PINGs from the client with grpc-go's keepalive payload (all zero; BDP pings differ)
	goAways        []goAway // GOAWAYs from the server
	closed         bool     // the server closed the connection
}

type goAway struct {
	Code  uint32
	Debug string
}

// tooManyPings reports whether the server sent GOAWAY ENHANCE_YOUR_CALM
// "too_many_pings", grpc-go's answer to a keepalive policy violation.
func (r connReport) tooManyPings() bool {
	for _, g := range r.goAways {
		if g.Code == errCodeEnhanceYourCalm && g.Debug == "too_many_pings" {
			return true
		}
	}
	return false
}

func (c *tapConn) report() connReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := connReport{closed: c.closed}
	if len(c.read) >= len(clientPreface) {
		eachFrame(c.read[len(clientPreface):], func(typ, flags byte, payload []byte) {
			if typ == framePing && flags&flagAck == 0 && string(payload) == string(make([]byte, 8)) {
				r.keepalivePings++
			}
		})
	}
	eachFrame(c.written, func(typ, _ byte, payload []byte) {
		if typ == frameGoAway && len(payload) >= 8 {
			code := uint32(payload[4])<<24 | uint32(payload[5])<<16 | uint32(payload[6])<<8 | uint32(payload[7])
			r.goAways = append(r.goAways, goAway{Code: code, Debug: string(payload[8:])})
		}
	})
	return r
}

// eachFrame calls fn for every complete HTTP/2 frame in b.
func eachFrame(b []byte, fn func(typ, flags byte, payload []byte)) {
	for len(b) >= frameHeaderLen {
		n := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
		if len(b) < frameHeaderLen+n {
			return // the rest has not been read or written yet
		}
		fn(b[3], b[4], b[frameHeaderLen:frameHeaderLen+n])
		b = b[frameHeaderLen+n:]
	}
}
