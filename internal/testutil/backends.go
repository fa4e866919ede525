package testutil

import (
	"fmt"
	"net"
	"testing"

	"github.com/grpcpool/grpcpool/internal/backend"
)

// StartBackends starts n real Echo servers on loopback TCP, named b0, b1,
// ..., stopped at cleanup.
func StartBackends(t testing.TB, n int) []*backend.Server {
	t.Helper()
	return StartBackendsWith(t, n, func(i int) backend.Options {
		return backend.Options{Name: fmt.Sprintf("b%d", i)}
	})
}

// StartBackendsWith starts n Echo servers on loopback TCP, the i-th with
// the options opts(i), stopped at cleanup.
func StartBackendsWith(t testing.TB, n int, opts func(i int) backend.Options) []*backend.Server {
	t.Helper()
	bs := make([]*backend.Server, 0, n)
	for i := range n {
		bs = append(bs, StartBackend(t, opts(i)))
	}
	return bs
}

// StartBackend starts one Echo server on loopback TCP, stopped at cleanup.
func StartBackend(t testing.TB, o backend.Options) *backend.Server {
	t.Helper()
	s, err := backend.Listen(o)
	if err != nil {
		t.Fatalf("backend: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartBackendsAt starts one Echo server listening on each of addrs
// ("host:port", IPv4), named by its address, stopped at cleanup.
func StartBackendsAt(t testing.TB, addrs ...string) []*backend.Server {
	t.Helper()
	bs := make([]*backend.Server, 0, len(addrs))
	for _, a := range addrs {
		lis, err := net.Listen("tcp4", a)
		if err != nil {
			t.Fatalf("listen %s: %v", a, err)
		}
		s := backend.Start(lis, backend.Options{Name: a})
		t.Cleanup(s.Stop)
		bs = append(bs, s)
	}
	return bs
}

// AddrsOf returns the addresses of bs, in order.
func AddrsOf(bs []*backend.Server) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Addr()
	}
	return out
}

// DeadAddr returns a loopback address nothing listens on (it did a moment
// ago, so a connect is refused).
func DeadAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return addr
}

// Sum returns the sum of xs.
func Sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}
