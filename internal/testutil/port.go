package testutil

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/grpcpool/grpcpool/internal/backend"
)

// Port is a loopback TCP port a test keeps bound from start to cleanup
// while the servers behind it come and go, so that a server can stop and
// another start at the same address without the port being given up: no
// other test's connection can take it as its local port meanwhile, so the
// test can run in parallel with others.
//
// While no server listens on it (it is down), the port accepts each
// connection and resets it at once: the client's connection fails before
// a byte is read, as it does when a crashed process's port refuses it.
// A Port is safe for concurrent use.
type Port struct {
	lis  net.Listener
	done chan struct{} // closed when the accept loop has ended

	mu  sync.Mutex    // guards cur
	cur *portListener // the listener connections go to; nil while down
}

// NewPort binds a port at 127.0.0.1 that the system picks, down until
// Listen; it is closed at cleanup.
func NewPort(t testing.TB) *Port {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &Port{lis: lis, done: make(chan struct{})}
	go p.acceptLoop()
	t.Cleanup(func() {
		_ = p.lis.Close()
		<-p.done
	})
	return p
}

// Addr is the port's address, as 127.0.0.1:port.
func (p *Port) Addr() string { return p.lis.Addr().String() }

// Listen returns a listener that gets the port's connections until it is
// closed; the port is down from then on. It fails while another listener
// of the port is open.
func (p *Port) Listen() (net.Listener, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil {
		return nil, fmt.Errorf("port %s: already listening", p.Addr())
	}
	p.cur = &portListener{p: p, conns: make(chan net.Conn), closed: make(chan struct{})}
	return p.cur, nil
}

// acceptLoop hands each accepted connection to the open listener, or
// resets it while there is none, until the port is closed.
func (p *Port) acceptLoop() {
	defer close(p.done)
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		l := p.cur
		p.mu.Unlock()
		if l == nil {
			reset(c)
			continue
		}
		select {
		case l.conns <- c:
		case <-l.closed:
			reset(c)
		}
	}
}

// reset closes c with a TCP reset rather than an orderly shutdown.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// portListener is one server's view of a Port.
type portListener struct {
	p         *Port
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *portListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *portListener) Close() error {
	err := errors.New("already closed")
	l.closeOnce.Do(func() {
		err = nil
		l.p.mu.Lock()
		if l.p.cur == l {
			l.p.cur = nil
		}
		l.p.mu.Unlock()
		close(l.closed)
	})
	return err
}

func (l *portListener) Addr() net.Addr { return l.p.lis.Addr() }

// StartBackendOn starts an Echo server listening on port, stopped at
// cleanup; stopping it takes the port down.
func StartBackendOn(t testing.TB, port *Port, o backend.Options) *backend.Server {
	t.Helper()
	lis, err := port.Listen()
	if err != nil {
		t.Fatalf("backend: %v", err)
	}
	s := backend.Start(lis, o)
	t.Cleanup(s.Stop)
	return s
}

// StartBackendsOnPorts starts n Echo servers named b0, b1, ..., each on a
// Port of its own, so that each can be stopped and another started at its
// address (StartBackendOn); they are stopped at cleanup.
func StartBackendsOnPorts(t testing.TB, n int) ([]*backend.Server, []*Port) {
	t.Helper()
	bs := make([]*backend.Server, n)
	ports := make([]*Port, n)
	for i := range n {
		ports[i] = NewPort(t)
		bs[i] = StartBackendOn(t, ports[i], backend.Options{Name: fmt.Sprintf("b%d", i)})
	}
	return bs, ports
}
