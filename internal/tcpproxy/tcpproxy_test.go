package tcpproxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/tcpproxy"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after testTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := testContext(t)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func newProxy(t *testing.T, backends ...string) *tcpproxy.Proxy {
	t.Helper()
	p, err := tcpproxy.New(backends...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// echoBackends starts n gRPC Echo backends named b0, b1, ….
func echoBackends(t *testing.T, n int) []*backend.Server {
	t.Helper()
	var bs []*backend.Server
	for i := range n {
		b, err := backend.Listen(backend.Options{Name: fmt.Sprintf("b%d", i)})
		if err != nil {
			t.Fatalf("backend.Listen: %v", err)
		}
		t.Cleanup(b.Stop)
		bs = append(bs, b)
	}
	return bs
}

func addrs(bs []*backend.Server) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Addr())
	}
	return out
}

// echoClient makes a new gRPC ClientConn to addr: one TCP connection.
func echoClient(t *testing.T, addr string) (echopb.EchoClient, *grpc.ClientConn) {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return echopb.NewEchoClient(cc), cc
}

// servedBy makes n unary calls and returns the one backend that served them
// all, failing the test when they were not all served by one.
func servedBy(t *testing.T, c echopb.EchoClient, n int) string {
	t.Helper()
	var got string
	for i := range n {
		r, err := c.Unary(testContext(t), &echopb.EchoRequest{Message: "x"})
		if err != nil {
			t.Fatalf("Unary: %v", err)
		}
		if i > 0 && r.GetBackend() != got {
			t.Fatalf("calls of one connection served by %q and %q, want one backend", got, r.GetBackend())
		}
		got = r.GetBackend()
	}
	return got
}

func TestRoundRobinPerConnection(t *testing.T) {
	bs := echoBackends(t, 3)
	p := newProxy(t, addrs(bs)...)
	served := map[string]int{}
	var order []string
	for range 6 {
		c, _ := echoClient(t, p.Addr())
		b := servedBy(t, c, 5)
		served[b]++
		order = append(order, b)
	}
	if want := []string{"b0", "b1", "b2", "b0", "b1", "b2"}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("connections went to %v, want %v", order, want)
	}
	for _, b := range bs {
		if got, want := b.Unary(), int64(10); got != want {
			t.Errorf("%s: got %d calls, want %d", b.Name(), got, want)
		}
	}
	want := map[string]int{bs[0].Addr(): 2, bs[1].Addr(): 2, bs[2].Addr(): 2}
	if got := p.Conns(); !maps.Equal(got, want) {
		t.Errorf("Conns: got %v, want %v", got, want)
	}
}

func TestStreamsPinnedToConnection(t *testing.T) {
	bs := echoBackends(t, 3)
	p := newProxy(t, addrs(bs)...)
	c, _ := echoClient(t, p.Addr())
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	for range 9 {
		if _, err := c.Bidi(ctx); err != nil {
			t.Fatalf("Bidi: %v", err)
		}
	}
	waitFor(t, "9 open streams", func() bool { return bs[0].ActiveStreams() == 9 })
	if got := bs[1].ActiveStreams() + bs[2].ActiveStreams(); got != 0 {
		t.Errorf("streams on other backends: got %d, want 0: an L4 proxy pins a connection", got)
	}
	counts := []int64{bs[0].ActiveStreams(), bs[1].ActiveStreams(), bs[2].ActiveStreams()}
	if got, want := backend.MaxOverMean(counts), 3.0; got != want {
		t.Errorf("MaxOverMean(%v): got %v, want %v", counts, got, want)
	}
}

func TestSetBackends(t *testing.T) {
	bs := echoBackends(t, 3)
	p := newProxy(t, bs[0].Addr(), bs[1].Addr())
	c1, _ := echoClient(t, p.Addr())
	if got, want := servedBy(t, c1, 1), "b0"; got != want {
		t.Fatalf("first connection: got %q, want %q", got, want)
	}
	p.SetBackends(bs[2].Addr())
	if got, want := p.Backends(), []string{bs[2].Addr()}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Backends: got %v, want %v", got, want)
	}
	for range 2 {
		c, _ := echoClient(t, p.Addr())
		if got, want := servedBy(t, c, 2), "b2"; got != want {
			t.Errorf("connection after SetBackends: got %q, want %q", got, want)
		}
	}
	// The connection made before the reload stays where it was.
	if got, want := servedBy(t, c1, 3), "b0"; got != want {
		t.Errorf("old connection after SetBackends: got %q, want %q", got, want)
	}
	want := map[string]int{bs[0].Addr(): 1, bs[2].Addr(): 2}
	if got := p.Conns(); !maps.Equal(got, want) {
		t.Errorf("Conns: got %v, want %v", got, want)
	}
}

// tcpServer serves handle on a loopback TCP listener, one goroutine per
// connection, until the test ends.
func tcpServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return lis.Addr().String()
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	var d net.Dialer
	c, err := d.DialContext(testContext(t), "tcp", addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatalf("SetDeadline: %v", err)
	}
	return c.(*net.TCPConn)
}

func TestHalfClose(t *testing.T) {
	// The backend answers only after the client's FIN reaches it, then sends
	// its own FIN: both must cross the proxy.
	addr := tcpServer(t, func(c net.Conn) {
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "got %d bytes", n)
	})
	p := newProxy(t, addr)
	c := dialTCP(t, p.Addr())
	if _, err := c.Write(make([]byte, 100_000)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if want := "got 100000 bytes"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	waitFor(t, "Conns() to drop to 0", func() bool { return p.Conns()[addr] == 0 })
}

func TestBackendHalfCloseFirst(t *testing.T) {
	// The backend sends and half-closes first; the client can still send
	// and the backend still reads it.
	got := make(chan string, 1)
	addr := tcpServer(t, func(c net.Conn) {
		io.WriteString(c, "hello")
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	p := newProxy(t, addr)
	c := dialTCP(t, p.Addr())
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello" {
		t.Fatalf("ReadAll: got (%q, %v), want (%q, nil)", b, err, "hello")
	}
	if _, err := io.WriteString(c, "after FIN"); err != nil {
		t.Fatalf("Write after backend FIN: %v", err)
	}
	c.CloseWrite()
	select {
	case s := <-got:
		if s != "after FIN" {
			t.Errorf("backend read %q, want %q", s, "after FIN")
		}
	case <-testContext(t).Done():
		t.Fatal("backend did not get the client's data")
	}
}

func TestConcurrentConnections(t *testing.T) {
	echo := func(c net.Conn) { io.Copy(c, c) }
	a1, a2 := tcpServer(t, echo), tcpServer(t, echo)
	p := newProxy(t, a1)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if i%5 == 0 {
				p.SetBackends(a1, a2)
			}
			var d net.Dialer
			c, err := d.DialContext(testContext(t), "tcp", p.Addr())
			if err != nil {
				t.Errorf("Dial: %v", err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(testTimeout))
			msg := fmt.Sprintf("message %d\n", i)
			if _, err := io.WriteString(c, msg); err != nil {
				t.Errorf("Write: %v", err)
				return
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || line != msg {
				t.Errorf("got (%q, %v), want (%q, nil)", line, err, msg)
			}
			_ = p.Conns()
		})
	}
	wg.Wait()
	waitFor(t, "all connections closed", func() bool {
		for _, n := range p.Conns() {
			if n != 0 {
				return false
			}
		}
		return true
	})
}

// expectClosed fails the test unless the proxy closes c without sending
// anything.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("Read: got (%d, %v), want the connection closed", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("Read: timed out, want the connection closed")
	}
}

func TestUnreachableBackendClosesConnection(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	dead := lis.Addr().String()
	lis.Close()
	p := newProxy(t, dead)
	expectClosed(t, dialTCP(t, p.Addr()))
	if got, want := p.Conns(), map[string]int{dead: 0}; !maps.Equal(got, want) {
		t.Errorf("Conns: got %v, want %v", got, want)
	}
}

func TestNoBackendsClosesConnection(t *testing.T) {
	p := newProxy(t)
	expectClosed(t, dialTCP(t, p.Addr()))
	if got := p.Conns(); len(got) != 0 {
		t.Errorf("Conns: got %v, want empty", got)
	}
}

func TestNewRejectsBadBackend(t *testing.T) {
	for _, b := range []string{"", "localhost", "127.0.0.1", "127.0.0.1:1:2"} {
		if p, err := tcpproxy.New(b); err == nil {
			p.Close()
			t.Errorf("New(%q): got nil error, want one", b)
		}
	}
}

func TestCloseEndsEverything(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	bs := make([]*backend.Server, 3)
	for i := range bs {
		b, err := backend.Listen(backend.Options{Name: fmt.Sprintf("b%d", i)})
		if err != nil {
			t.Fatalf("backend.Listen: %v", err)
		}
		bs[i] = b
	}
	p, err := tcpproxy.New(addrs(bs)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	var ccs []*grpc.ClientConn
	var streams []grpc.BidiStreamingClient[echopb.EchoRequest, echopb.EchoResponse]
	for range 3 {
		cc, err := grpc.NewClient("passthrough:///"+p.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("NewClient: %v", err)
		}
		ccs = append(ccs, cc)
		st, err := echopb.NewEchoClient(cc).Bidi(ctx)
		if err != nil {
			t.Fatalf("Bidi: %v", err)
		}
		if err := st.Send(&echopb.EchoRequest{Message: "x"}); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatalf("Recv: %v", err)
		}
		streams = append(streams, st)
	}
	for _, b := range bs {
		if got, want := b.ActiveStreams(), int64(1); got != want {
			t.Errorf("%s: ActiveStreams got %d, want %d", b.Name(), got, want)
		}
	}

	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, st := range streams {
		if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
			t.Errorf("open stream after Close: got %v, want code %v", err, codes.Unavailable)
		}
	}
	if got := p.Conns(); len(got) != 3 || got[bs[0].Addr()]+got[bs[1].Addr()]+got[bs[2].Addr()] != 0 {
		t.Errorf("Conns after Close: got %v, want every backend at 0", got)
	}
	for _, b := range bs {
		waitFor(t, b.Name()+" to see its stream end", func() bool { return b.ActiveStreams() == 0 })
	}

	for _, cc := range ccs {
		cc.Close()
	}
	for _, b := range bs {
		b.Stop()
	}
	goleak.VerifyNone(t, ignore)
}

func TestConcurrentClose(t *testing.T) {
	p, err := tcpproxy.New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := p.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
}
