package etcdmembership

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// registry registers endpoints under one target of a real etcd, as
// backends do with etcd's naming package.
type registry struct {
	t      *testing.T
	em     endpoints.Manager
	target string
}

func newRegistry(t *testing.T, cli *clientv3.Client, target string) *registry {
	t.Helper()
	em, err := endpoints.NewManager(cli, target)
	require.NoError(t, err)
	return &registry{t: t, em: em, target: target}
}

// add registers addr (its key: target/addr) in zone, or with no Metadata
// when zone is "".
func (r *registry) add(addr, zone string) {
	r.t.Helper()
	ep := endpoints.Endpoint{Addr: addr}
	if zone != "" {
		ep.Metadata = Metadata{Zone: zone}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(r.t, r.em.AddEndpoint(ctx, r.target+"/"+addr, ep))
}

func (r *registry) delete(addr string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(r.t, r.em.DeleteEndpoint(ctx, r.target+"/"+addr))
}

// build builds the resolver of NewResolver for target, reporting to cc,
// closed at cleanup.
func build(t *testing.T, cli *clientv3.Client, target string, cc resolver.ClientConn) {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	r, err := NewResolver(cli).Build(resolver.Target{URL: *u}, cc, resolver.BuildOptions{})
	require.NoError(t, err)
	t.Cleanup(r.Close)
}

// reports waits until cc's last state is want ("addr@zone", in key order).
func reports(t *testing.T, cc *recordingCC, what string, want ...string) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, what, func() error {
		if _, got := cc.last(); !slices.Equal(got, want) {
			return fmt.Errorf("reported %v, want %v", got, want)
		}
		return nil
	})
}

// TestResolverFollowsEtcd: three endpoints registered in two zones in a
// real etcd are reported with their zones (the Metadata came back from
// etcd as decoded JSON); a zone changed, an endpoint deleted, one added:
// the state follows each.
func TestResolverFollowsEtcd(t *testing.T) {
	cli := harness.StartEtcd(t).Client(t)
	reg := newRegistry(t, cli, "services/greeter")
	reg.add("10.0.1.1:50051", "a")
	reg.add("10.0.1.2:50051", "a")
	reg.add("10.0.2.1:50051", "b")
	cc := &recordingCC{}
	build(t, cli, "etcd:///services/greeter", cc)
	reports(t, cc, "three endpoints in two zones", "10.0.1.1:50051@a", "10.0.1.2:50051@a", "10.0.2.1:50051@b")

	reg.add("10.0.1.2:50051", "b")
	reports(t, cc, "a zone changed", "10.0.1.1:50051@a", "10.0.1.2:50051@b", "10.0.2.1:50051@b")
	reg.delete("10.0.1.1:50051")
	reports(t, cc, "an endpoint deleted", "10.0.1.2:50051@b", "10.0.2.1:50051@b")
	reg.add("10.0.3.1:50051", "")
	reports(t, cc, "an endpoint with no zone added", "10.0.1.2:50051@b", "10.0.2.1:50051@b", "10.0.3.1:50051@")
	require.Empty(t, cc.errors())
}

// TestResolverTargets: a target with no prefix is an error from Build; a
// trailing slash is the same target.
func TestResolverTargets(t *testing.T) {
	cli := harness.StartEtcd(t).Client(t)
	newRegistry(t, cli, "svc").add("10.0.0.1:1", "a")
	u, err := url.Parse("etcd:///")
	require.NoError(t, err)
	_, err = NewResolver(cli).Build(resolver.Target{URL: *u}, &recordingCC{}, resolver.BuildOptions{})
	require.Error(t, err)
	_, err = NewResolver(nil).Build(resolver.Target{URL: url.URL{Scheme: "etcd", Path: "/svc"}}, &recordingCC{}, resolver.BuildOptions{})
	require.Error(t, err, "nil etcd client")
	cc := &recordingCC{}
	build(t, cli, "etcd:///svc/", cc)
	reports(t, cc, "etcd:///svc/", "10.0.0.1:1@a")
}

// calls makes unary calls through cc until every server has answered at
// least one; it fails the test when that does not happen within 20 s or a
// call fails.
func calls(t *testing.T, cc grpc.ClientConnInterface, servers []*backend.Server) {
	t.Helper()
	c := echopb.NewEchoClient(cc)
	before := make([]int64, len(servers))
	for i, s := range servers {
		before[i] = s.Unary()
	}
	harness.Eventually(t, 20*time.Second, "every backend to answer", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for range 10 {
			if _, err := c.Unary(ctx, &echopb.EchoRequest{Message: "hi"}); err != nil {
				return err
			}
		}
		for i, s := range servers {
			if s.Unary() == before[i] {
				return fmt.Errorf("no call on %s yet", s.Addr())
			}
		}
		return nil
	})
}

// TestPoolAndClientConnThroughResolver: real backends registered in etcd
// are reached through the resolver both by a pool (WithResolvers) and by
// a plain grpc.ClientConn (grpc.WithResolvers, round_robin).
func TestPoolAndClientConnThroughResolver(t *testing.T) {
	cli := harness.StartEtcd(t).Client(t)
	servers := testutil.StartBackends(t, 3)
	reg := newRegistry(t, cli, "services/echo")
	for i, s := range servers {
		reg.add(s.Addr(), []string{"a", "a", "b"}[i])
	}

	p := testutil.NewPool(t, "etcd:///services/echo", pool.WithResolvers(NewResolver(cli)), pool.WithSize(1))
	calls(t, p, servers)

	cc, err := grpc.NewClient("etcd:///services/echo", testutil.Insecure,
		grpc.WithResolvers(NewResolver(cli)),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	calls(t, cc, servers)
}
