package etcdmembership

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// teeBuilder builds b's resolver on a ClientConn that also tells rec what
// the real one is told: what the pool received.
type teeBuilder struct {
	resolver.Builder
	rec *recordingCC
}

func (b teeBuilder) Build(t resolver.Target, cc resolver.ClientConn, o resolver.BuildOptions) (resolver.Resolver, error) {
	return b.Builder.Build(t, teeCC{cc, b.rec}, o)
}

type teeCC struct {
	resolver.ClientConn
	rec *recordingCC
}

func (c teeCC) UpdateState(s resolver.State) error {
	_ = c.rec.UpdateState(s)
	return c.ClientConn.UpdateState(s)
}

func (c teeCC) ReportError(err error) {
	c.rec.ReportError(err)
	c.ClientConn.ReportError(err)
}

// registerLeased registers addr in zone under a lease of its own, kept
// alive until the test ends, as a backend does; it returns the lease.
func registerLeased(t *testing.T, cli *clientv3.Client, em endpoints.Manager, target, addr, zone string) clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := cli.Grant(ctx, 10)
	require.NoError(t, err)
	require.NoError(t, em.AddEndpoint(ctx, target+"/"+addr,
		endpoints.Endpoint{Addr: addr, Metadata: Metadata{Zone: zone}}, clientv3.WithLease(lease.ID)))
	kctx, kcancel := context.WithCancel(context.Background())
	ch, err := cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		kcancel()
		t.Fatalf("keep alive %s: %v", addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range ch { // the etcd client needs its responses read
		}
	}()
	t.Cleanup(func() {
		kcancel()
		<-done
	})
	return lease.ID
}

// subnetZone is the zone layout of the tests: 127.0.1.x is zone a,
// 127.0.2.x zone b, 127.0.3.x zone c.
func subnetZone(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	switch {
	case strings.HasPrefix(host, "127.0.1."):
		return "a"
	case strings.HasPrefix(host, "127.0.2."):
		return "b"
	case strings.HasPrefix(host, "127.0.3."):
		return "c"
	}
	return ""
}

// zonedFleet starts a real etcd and real backends on hosts (one port for
// all), each registered under target through etcd's naming package with
// its zone (subnetZone) under a lease of its own. It returns the
// backends' addresses, in hosts' order, the servers, a client of the
// etcd, and each address's lease.
func zonedFleet(t *testing.T, target string, hosts ...string) ([]string, []*backend.Server, *clientv3.Client, map[string]clientv3.LeaseID) {
	t.Helper()
	port := strconv.Itoa(harness.FreePort(t, hosts...))
	var addrs []string
	for _, h := range hosts {
		addrs = append(addrs, net.JoinHostPort(h, port))
	}
	servers := testutil.StartBackendsAt(t, addrs...)
	cli := harness.StartEtcd(t).Client(t)
	em, err := endpoints.NewManager(cli, target)
	require.NoError(t, err)
	leases := make(map[string]clientv3.LeaseID)
	for _, a := range addrs {
		leases[a] = registerLeased(t, cli, em, target, a, subnetZone(a))
	}
	return addrs, servers, cli, leases
}

// TestZonesFromEtcd runs the zone pieces against real components: four
// real backends on 127.0.1.1–2 (zone a) and 127.0.2.1–2 (zone b) register
// through etcd's naming package with their zone and a lease; three
// clients join the fleet in zones a, a, b. Asserted:
//   - every address the pool receives from the resolver carries its
//     backend's zone (pool.AddressZone), and calls reach all four;
//   - every client counts {a:2, b:1};
//   - a backend whose lease is revoked leaves the pool's state and gets
//     no more calls, and the others keep their zones.
func TestZonesFromEtcd(t *testing.T) {
	const target = "services/echo"
	addrs, servers, cli, leases := zonedFleet(t, target, "127.0.1.1", "127.0.1.2", "127.0.2.1", "127.0.2.2")
	var ws []*zoneWatch
	for _, z := range []string{"a", "a", "b"} {
		ws = append(ws, watchZones(t, joinZone(t, cli, "/fleets/echo-clients/", z)))
	}

	rec := &recordingCC{}
	p := testutil.NewPool(t, "etcd:///"+target, pool.WithResolvers(teeBuilder{NewResolver(cli), rec}), pool.WithSize(1))
	want := func(as []string) []string {
		out := make([]string, len(as))
		for i, a := range as {
			out[i] = a + "@" + subnetZone(a)
		}
		return out
	}
	reports(t, rec, "the pool's addresses with their zones", want(addrs)...)
	calls(t, p, servers)
	zonesAre(t, "the clients per zone", ws, map[string]int{"a": 2, "b": 1})

	gone := addrs[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cli.Revoke(ctx, leases[gone])
	require.NoError(t, err)
	reports(t, rec, "the pool's addresses after a lease revoked", want(addrs[1:])...)
	harness.Eventually(t, 20*time.Second, gone+" retired by the pool", func() error {
		for _, b := range p.Stats().Backends {
			if b.Addr == gone && !b.Removed {
				return fmt.Errorf("%s still in the pool", gone)
			}
		}
		return nil
	})
	before := servers[0].Unary()
	calls(t, p, servers[1:])
	require.Equal(t, before, servers[0].Unary(), "calls on %s after it was retired", gone)
	require.Empty(t, rec.errors())
}
