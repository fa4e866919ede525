// Package tcpproxy is an in-process connection-level (L4) TCP proxy that
// balances round-robin per accepted connection, as haproxy does in
// `mode tcp` with `balance roundrobin`. Tests and the example program put it
// in front of gRPC backends to show what an L4 balancer does to HTTP/2: every
// call of one client connection lands on the one backend that connection was
// sent to.
package tcpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// dialTimeout bounds the dial to a backend for one accepted connection.
const dialTimeout = 5 * time.Second

// Proxy listens on a loopback port and forwards each accepted connection to
// one backend, chosen round-robin. It is safe for concurrent use.
type Proxy struct {
	lis    net.Listener
	ctx    context.Context // canceled by Close; bounds backend dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and one per accepted connection

	mu       sync.Mutex // guards the fields below
	backends []string
	next     uint64             // round-robin counter, taken modulo len(backends)
	links    map[*link]struct{} // connections accepted and not yet closed
	conns    map[string]int     // open proxied connections per backend
	closed   bool

	closeOnce sync.Once
	closeErr  error // what the first Close returned; set inside closeOnce
}

// link is one accepted client connection and, once dialed, its backend
// connection.
type link struct {
	client  net.Conn
	backend net.Conn // nil until dialed; set under Proxy.mu
}

// New starts a Proxy on 127.0.0.1 at a port the system picks, forwarding to
// backends (host:port TCP addresses). It may start with no backends: it
// then closes every connection it accepts until SetBackends gives it some.
// It fails when an address is not host:port or when it cannot listen.
func New(backends ...string) (*Proxy, error) {
	for _, b := range backends {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return nil, fmt.Errorf("tcpproxy: backend %q: %w", b, err)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tcpproxy: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		lis:      lis,
		ctx:      ctx,
		cancel:   cancel,
		backends: append([]string(nil), backends...),
		links:    make(map[*link]struct{}),
		conns:    make(map[string]int),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address clients connect to, as 127.0.0.1:port.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// SetBackends replaces the backends. Like an L4 balancer's reload, it
// affects only connections accepted from then on: open ones stay with their
// backends. Addresses are not checked here; a connection sent to one that
// cannot be dialed is closed.
func (p *Proxy) SetBackends(backends ...string) {
	bs := append([]string(nil), backends...)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backends = bs
}

// Backends returns a copy of the current backends.
func (p *Proxy) Backends() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.backends...)
}

// Conns returns the number of open proxied connections per backend: a
// connection counts from the moment its backend connection is made until
// both of its sides are closed. Every current backend has an entry, zero
// when it has no connection; a backend removed by SetBackends has one while
// it still has connections. The map is the caller's.
func (p *Proxy) Conns() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.backends)+len(p.conns))
	for _, b := range p.backends {
		out[b] = 0
	}
	for b, n := range p.conns {
		out[b] = n
	}
	return out
}

// Close stops listening, closes every proxied connection on both sides and
// waits until all of the Proxy's goroutines have returned. It is
// idempotent: later calls wait for the first and return what it returned.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.cancel()
		p.closeErr = p.lis.Close()
		for l := range p.links {
			l.closeLocked()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p.closeErr
}

// acceptLoop accepts connections until the listener is closed, and hands
// each to its own goroutine.
func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		c, err := p.lis.Accept()
		if err != nil {
			if p.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient failure such as running out of file
			// descriptors: back off as net/http's Server does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-p.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		l := &link{client: c}
		backend, ok := p.addLink(l)
		if !ok {
			c.Close()
			continue
		}
		go p.serve(l, backend)
	}
}

// addLink registers l, picks its backend and counts its goroutine. It
// reports false, registering nothing, when the Proxy is closed or has no
// backends.
func (p *Proxy) addLink(l *link) (backend string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.backends) == 0 {
		return "", false
	}
	backend = p.backends[p.next%uint64(len(p.backends))]
	p.next++
	p.links[l] = struct{}{}
	p.wg.Add(1)
	return backend, true
}

// isClosed reports whether Close has been called.
func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// serve dials backend for l and copies bytes both ways until both
// directions are done, then closes and unregisters l.
func (p *Proxy) serve(l *link, backend string) {
	defer p.wg.Done()
	defer p.removeLink(l, backend)

	d := net.Dialer{Timeout: dialTimeout}
	bc, err := d.DialContext(p.ctx, "tcp", backend)
	if err != nil {
		return // removeLink closes the client side
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		bc.Close()
		return
	}
	l.backend = bc
	p.conns[backend]++
	p.mu.Unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(bc, l.client, l)
	}()
	pipe(l.client, bc, l)
	<-done
}

// pipe copies src to dst. When src ends cleanly (EOF) it half-closes dst,
// passing the FIN on, so the other direction can still finish. When either
// side fails (a reset, or a write to a peer that is gone) it closes both
// connections of l, as a proxy must when one side breaks.
func pipe(dst, src net.Conn, l *link) {
	_, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			if cw.CloseWrite() == nil {
				return
			}
		}
	}
	l.client.Close()
	l.backend.Close()
}

// removeLink closes both sides of l and forgets it.
func (p *Proxy) removeLink(l *link, backend string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l.backend != nil {
		p.conns[backend]--
		if p.conns[backend] == 0 {
			delete(p.conns, backend)
		}
	}
	l.closeLocked()
	delete(p.links, l)
}

// closeLocked closes both sides of l. Proxy.mu must be held, since it reads
// l.backend. Closing a connection twice is harmless.
func (l *link) closeLocked() {
	l.client.Close()
	if l.backend != nil {
		l.backend.Close()
	}
}
