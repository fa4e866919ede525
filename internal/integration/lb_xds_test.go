package integration

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/xds"

	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/lb"
	"github.com/grpcpool/grpcpool/pool"
)

// TestXDSSelectsThePolicy: a real xDS management server (go-control-plane)
// serves a listener, a route, a cluster and three endpoints on loopback;
// the cluster's load_balancing_policy names the policy with a TypedStruct
// (gRFC A52), with its config. A grpc client with an xds:/// target gets
// the policy from the control plane: three connections to every endpoint,
// and 60 streams placed by least_active, 20 on each.
func TestXDSSelectsThePolicy(t *testing.T) {
	const (
		name    = "greeter.test"
		node    = "grpcpool-test-node"
		size    = 3
		streams = 60
	)
	addrs := sameLoopbackPort(t, 2, 3)
	f := startCountingFleet(t, addrs...)
	cp := harness.StartXDS(t)
	policy, err := harness.CustomPolicy(lb.Name, map[string]any{"size": size, "policy": lb.LeastActive})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testutil.Context(t)
	if err := cp.Set(ctx, node, harness.Service{Name: name, Policy: policy, Addrs: addrs}); err != nil {
		t.Fatal(err)
	}
	xdsResolver, err := xds.NewXDSResolverWithConfigForTesting(cp.Bootstrap(node))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+name, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(xdsResolver))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	cc.Connect()

	f.waitConns(t, addrs, size)
	ss := testutil.OpenStreams(t, cc, streams)
	got := f.waitActive(t, addrs, streams)
	t.Logf("xds:///%s, policy %s from the control plane, %d streams: %s", name, lb.Name, streams, figures(addrs, got))
	for i, a := range addrs {
		if got[i] != streams/3 {
			t.Errorf("backend %s has %d streams, want %d (least_active places them exactly)", a, got[i], streams/3)
		}
	}
	testutil.EndAll(t, ss)

	// The pool refuses the same target, pointing to the policy: grpc's
	// xDS resolver, registered here, reports no addresses.
	_, err = pool.New("xds:///"+name, pool.WithResolvers(xdsResolver),
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if !errors.Is(err, pool.ErrInvalidTarget) || !strings.Contains(err.Error(), "grpcpool/lb") {
		t.Errorf("pool.New(xds:///%s): %v, want ErrInvalidTarget pointing to package lb", name, err)
	}
	if resolver.Get("xds") == nil {
		t.Error("the xds scheme is not registered: the pool's refusal was not tested against grpc's xDS resolver")
	}
}
