package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	etcdresolver "go.etcd.io/etcd/client/v3/naming/resolver"

	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/pool"
)

// TestEtcdRegistry discovers backends through etcd's naming resolver
// (go.etcd.io/etcd/client/v3/naming/resolver, given with WithResolvers):
// each backend registers itself under "svc/" with a lease, as
// go.etcd.io/etcd/client/v3/naming/endpoints does. Under a steady unary
// load,
//   - a newly registered backend starts getting calls,
//   - a backend whose lease is revoked stops getting calls,
//   - a backend whose lease expires (its keep-alive stops, as when its
//     process dies) stops getting calls,
//
// and no call fails.
func TestEtcdRegistry(t *testing.T) {
	const (
		service  = "svc"
		liveTTL  = 10 // seconds; kept alive
		dyingTTL = 3  // seconds; the lease that is left to expire
	)
	addrs := sameLoopbackPort(t, 2, 4) // 127.0.0.2 … 127.0.0.5
	f := startFleet(t, addrs...)
	revoked, expiring, stays, joins := addrs[0], addrs[1], addrs[2], addrs[3]

	e := harness.StartEtcd(t)
	cli := e.Client(t)
	em, err := endpoints.NewManager(cli, service)
	if err != nil {
		t.Fatalf("endpoints.NewManager: %v", err)
	}
	leases := map[string]*registration{}
	register := func(addr string, ttl int64) {
		t.Helper()
		leases[addr] = registerEndpoint(t, cli, em, service, addr, ttl)
	}
	register(revoked, liveTTL)
	register(expiring, dyingTTL)
	register(stays, liveTTL)

	builder, err := etcdresolver.NewBuilder(cli)
	if err != nil {
		t.Fatalf("etcd resolver.NewBuilder: %v", err)
	}
	p := newPool(t, "etcd:///"+service, pool.WithResolvers(builder), pool.WithSize(2))
	waitReadyConns(t, p, map[string]int{revoked: 2, expiring: 2, stays: 2})
	ld := startLoad(t, p)
	f.waitMoreUnary(t, addrs[:3], 300)
	t.Logf("three registered: %s", figures(addrs[:3], f.unary(addrs[:3])))

	// A new backend registers: it gets calls.
	start := time.Now()
	register(joins, liveTTL)
	harness.Eventually(t, waitLong, joins+" to get calls", func() error {
		if n := f.servers[joins].Unary(); n == 0 {
			return fmt.Errorf("no calls on %s", joins)
		}
		return nil
	})
	t.Logf("registered %s: first call on it %v later", joins, time.Since(start).Round(time.Millisecond))

	// A lease revoked: the key goes at once and the backend gets no more
	// calls.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start = time.Now()
	leases[revoked].stopKeepAlive()
	if _, err := cli.Revoke(ctx, leases[revoked].id); err != nil {
		t.Fatalf("revoke lease of %s: %v", revoked, err)
	}
	waitGone(t, p, revoked)
	t.Logf("revoked the lease of %s: pool retired it %v later", revoked, time.Since(start).Round(time.Millisecond))
	f.expectNoMoreUnary(t, revoked, []string{expiring, stays, joins})

	// A lease left to expire: the key goes after its TTL.
	start = time.Now()
	leases[expiring].stopKeepAlive()
	harness.Eventually(t, time.Duration(dyingTTL)*time.Second+waitLong, "lease of "+expiring+" to expire", func() error {
		resp, err := cli.Get(ctx, service+"/"+expiring)
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 0 {
			return fmt.Errorf("key still there")
		}
		return nil
	})
	expired := time.Since(start)
	waitGone(t, p, expiring)
	t.Logf("stopped the keep-alive of %s (TTL %ds): key expired %v later, pool retired it %v later",
		expiring, dyingTTL, expired.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	f.expectNoMoreUnary(t, expiring, []string{stays, joins})

	ld.Stop()
	ld.check(t, "through one registration, one revocation and one expiry")
	t.Logf("unary calls per backend: %s", figures(addrs, f.unary(addrs)))
}

// registration is a backend's entry in etcd and the lease that holds it.
type registration struct {
	id     clientv3.LeaseID
	cancel context.CancelFunc // stops the keep-alive
	done   chan struct{}      // closed when the keep-alive channel is drained
}

// registerEndpoint registers addr under service with a lease of ttl
// seconds, kept alive until stopKeepAlive or t.Cleanup.
func registerEndpoint(t *testing.T, cli *clientv3.Client, em endpoints.Manager, service, addr string, ttl int64) *registration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatalf("grant lease for %s: %v", addr, err)
	}
	if err := em.AddEndpoint(ctx, service+"/"+addr, endpoints.Endpoint{Addr: addr}, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatalf("register %s: %v", addr, err)
	}
	r := &registration{id: lease.ID, done: make(chan struct{})}
	kctx, kcancel := context.WithCancel(context.Background())
	ch, err := cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		kcancel()
		t.Fatalf("keep alive lease of %s: %v", addr, err)
	}
	r.cancel = kcancel
	go func() {
		defer close(r.done)
		for range ch { // the client needs its responses read
		}
	}()
	t.Cleanup(r.stopKeepAlive)
	return r
}

// stopKeepAlive stops renewing the lease and waits for the keep-alive to
// end. It is idempotent.
func (r *registration) stopKeepAlive() {
	r.cancel()
	<-r.done
}
