package harness_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/internal/testutil"
)

func TestDNSServesAndUpdatesRecords(t *testing.T) {
	dns := harness.StartDNS(t, map[string][]string{
		"svc.test": {"127.0.0.2", "127.0.0.3"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got, err := dns.Lookup(ctx, "svc.test")
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	if want := "127.0.0.2 127.0.0.3"; strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %v", got, want)
	}

	dns.SetRecords(t, map[string][]string{"svc.test": {"127.0.0.3", "127.0.0.4", "127.0.0.5"}})
	got, err = dns.Lookup(ctx, "svc.test")
	if err != nil {
		t.Fatalf("lookup after SIGHUP: %v", err)
	}
	if want := "127.0.0.3 127.0.0.4 127.0.0.5"; strings.Join(got, " ") != want {
		t.Fatalf("after SIGHUP: got %v, want %v", got, want)
	}

	if _, err := dns.Lookup(ctx, "other.test"); err == nil {
		t.Fatalf("other.test resolved; want NXDOMAIN (no upstream, no /etc/hosts)")
	}
	t.Logf("dnsmasq on %s: svc.test → %v", dns.Addr, got)
}

func TestHAProxyRoundRobinAndSeamlessReload(t *testing.T) {
	hosts := harness.LoopbackHosts(2, 3)
	port := harness.FreePort(t, hosts...)
	addrs := make([]string, len(hosts))
	for i, h := range hosts {
		addrs[i] = net.JoinHostPort(h, fmt.Sprint(port))
		testutil.NameServer(t, addrs[i])
	}

	hap := harness.StartHAProxy(t, addrs[:2])

	// Round robin: four connections, two on each server.
	counts := map[string]int{}
	var kept []*testutil.NameConn
	for range 4 {
		c := testutil.DialName(t, hap.Addr)
		counts[c.Server]++
		kept = append(kept, c)
	}
	if counts[addrs[0]] != 2 || counts[addrs[1]] != 2 {
		t.Fatalf("connections per server: got %v, want 2 on each of %v", counts, addrs[:2])
	}

	hap.SetServers(t, addrs)

	// Connections made before the reload live on, to the same server.
	for _, c := range kept {
		if err := c.Ping(); err != nil {
			t.Fatalf("connection to %s made before the reload: %v", c.Server, err)
		}
	}
	// New connections reach all three, the new one included.
	counts = map[string]int{}
	for range 6 {
		c := testutil.DialName(t, hap.Addr)
		counts[c.Server]++
	}
	for _, a := range addrs {
		if counts[a] != 2 {
			t.Fatalf("connections per server after reload: got %v, want 2 on each of %v", counts, addrs)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	procs, err := hap.ShowProc(ctx)
	if err != nil {
		t.Fatalf("show proc: %v", err)
	}
	t.Logf("haproxy on %s after reload, 4 old connections alive:\n%s", hap.Addr, procs)
}

func TestEtcdServesTheGoClient(t *testing.T) {
	e := harness.StartEtcd(t)
	c := e.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	st, err := c.Status(ctx, e.Endpoint)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	lease, err := c.Grant(ctx, 5)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	resp, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("get k: got %v, want v", resp.Kvs)
	}
	if _, err := c.Revoke(ctx, lease.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	t.Logf("etcd server %s at %s", st.Version, e.Endpoint)
}
