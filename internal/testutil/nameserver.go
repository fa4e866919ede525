package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// NameServer listens on addr ("host:port"; "127.0.0.1:0" for any port) and
// returns its address. Each connection is told that address on a first line
// and then gets every line it sends echoed back: a TCP server that says
// which server a proxy took a connection to. It stops at cleanup.
func NameServer(t testing.TB, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	name := l.Addr().String()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards conns
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				fmt.Fprintln(c, name)
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintln(c, sc.Text())
				}
			})
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return name
}

// NameConn is a connection to a NameServer, possibly through a proxy. It is
// for one goroutine at a time.
type NameConn struct {
	net.Conn
	r      *bufio.Reader
	Server string // the address of the NameServer that answered
}

// DialName connects to addr and reads the answering server's address. The
// connection is closed at cleanup.
func DialName(t testing.TB, addr string) *NameConn {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("via %s: read server name: %v", addr, err)
	}
	return &NameConn{Conn: c, r: r, Server: strings.TrimSpace(line)}
}

// Ping sends a line and checks it comes back within 5 s.
func (c *NameConn) Ping() error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, "ping"); err != nil {
		return err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "ping" {
		return errors.New("echo: got " + line)
	}
	return nil
}
