package harness

import (
	"context"
	"testing"

	"github.com/grpcpool/grpcpool/internal/haproxy"
)

// HAProxy is an haproxy in master-worker mode balancing TCP connections
// round-robin over a set of servers: an L4 VIP, as a Kubernetes ClusterIP
// or a cloud load balancer is to a gRPC client. It listens on Addr. It is
// the SDK module's internal/haproxy (the launcher the example program's
// scenarios use too), stopped in t.Cleanup.
//
// SetServers reloads it the way a VIP is reconfigured in production: the
// master starts a new worker with the new server list; the old worker stops
// accepting but keeps every connection it already carries until it closes.
type HAProxy struct {
	Addr string // "127.0.0.1:PORT"
	Port int

	p *haproxy.Proxy
}

// StartHAProxy starts haproxy with servers ("host:port") behind one
// frontend and waits until its worker serves that list.
func StartHAProxy(t testing.TB, servers []string) *HAProxy {
	t.Helper()
	bin := Need(t, "haproxy")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	p, err := haproxy.Start(ctx, bin, servers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Close()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", p.Output())
		}
	})
	return &HAProxy{Addr: p.Addr, Port: p.Port, p: p}
}

// SetServers rewrites the configuration with servers, reloads haproxy
// (SIGUSR2 to the master) and waits until the new worker serves them.
// Connections made before the reload stay with the old worker and keep
// going to the server they went to.
func (h *HAProxy) SetServers(t testing.TB, servers []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := h.p.SetServers(ctx, servers); err != nil {
		t.Fatal(err)
	}
}

// ShowProc returns the master CLI's "show proc": the master, the current
// worker and the old workers still draining connections.
func (h *HAProxy) ShowProc(ctx context.Context) (string, error) {
	return h.p.ShowProc(ctx)
}
