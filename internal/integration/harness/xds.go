package harness

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"

	xdstypepb "github.com/cncf/xds/go/xds/type/v3"
	clusterpb "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corepb "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointpb "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerpb "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// XDS is a real xDS management server, go-control-plane's, serving the
// Aggregated Discovery Service on loopback from a snapshot cache: the
// control plane an xDS client (grpc.NewClient("xds:///name")) talks to.
// It is stopped in t.Cleanup.
type XDS struct {
	Addr string // "127.0.0.1:PORT"

	cache  cachev3.SnapshotCache
	srv    *grpc.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards version
	version int
}

// StartXDS starts a management server with no resources; Set gives it
// some.
func StartXDS(t testing.TB) *XDS {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("xds: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// false: answer each request with the resources it names, as grpc's
	// xDS client asks for them one type at a time.
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	x := &XDS{Addr: lis.Addr().String(), cache: cache, srv: grpc.NewServer(), cancel: cancel}
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(x.srv, serverv3.NewServer(ctx, cache, nil))
	x.wg.Go(func() { _ = x.srv.Serve(lis) })
	t.Cleanup(func() {
		x.cancel()
		x.srv.Stop()
		x.wg.Wait()
	})
	return x
}

// Bootstrap returns an xDS bootstrap config (the contents of
// GRPC_XDS_BOOTSTRAP_CONFIG) that points a client identified as node at
// this server, without credentials.
func (x *XDS) Bootstrap(node string) []byte {
	return fmt.Appendf(nil, `{
	"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
	"node": {"id": %q}
}`, x.Addr, node)
}

// Service is what Set serves for one xDS target name: the listener and
// route named Name, one EDS cluster of that name whose load-balancing
// policy is Policy (nil: the cluster's default, round_robin), and the
// endpoints Addrs ("host:port") in one locality.
type Service struct {
	Name   string
	Policy *clusterpb.LoadBalancingPolicy
	Addrs  []string
}

// Set replaces what the server serves to node with svc, consistently
// (a new snapshot version).
func (x *XDS) Set(ctx context.Context, node string, svc Service) error {
	lis, err := listener(svc.Name)
	if err != nil {
		return err
	}
	eps, err := endpoints(svc.Name, svc.Addrs)
	if err != nil {
		return err
	}
	cluster := &clusterpb.Cluster{
		Name:                 svc.Name,
		ClusterDiscoveryType: &clusterpb.Cluster_Type{Type: clusterpb.Cluster_EDS},
		EdsClusterConfig: &clusterpb.Cluster_EdsClusterConfig{
			EdsConfig: ads(),
		},
		LoadBalancingPolicy: svc.Policy,
	}
	x.mu.Lock()
	x.version++
	v := strconv.Itoa(x.version)
	x.mu.Unlock()
	snap, err := cachev3.NewSnapshot(v, map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {lis},
		resourcev3.RouteType:    {route(svc.Name)},
		resourcev3.ClusterType:  {cluster},
		resourcev3.EndpointType: {eps},
	})
	if err != nil {
		return fmt.Errorf("xds: snapshot: %w", err)
	}
	if err := snap.Consistent(); err != nil {
		return fmt.Errorf("xds: snapshot: %w", err)
	}
	return x.cache.SetSnapshot(ctx, node, snap)
}

func ads() *corepb.ConfigSource {
	return &corepb.ConfigSource{ConfigSourceSpecifier: &corepb.ConfigSource_Ads{Ads: &corepb.AggregatedConfigSource{}}}
}

// listener is the client-side (API) listener for name, routing through
// the route configuration of the same name, with the router filter.
func listener(name string) (*listenerpb.Listener, error) {
	router, err := anypb.New(&routerpb.Router{})
	if err != nil {
		return nil, err
	}
	hcm, err := anypb.New(&hcmpb.HttpConnectionManager{
		RouteSpecifier: &hcmpb.HttpConnectionManager_Rds{Rds: &hcmpb.Rds{ConfigSource: ads(), RouteConfigName: name}},
		HttpFilters: []*hcmpb.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmpb.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	})
	if err != nil {
		return nil, err
	}
	return &listenerpb.Listener{
		Name:        name,
		ApiListener: &listenerpb.ApiListener{ApiListener: hcm},
		// The same manager as a filter chain too: the snapshot's
		// consistency check finds the route it references there.
		FilterChains: []*listenerpb.FilterChain{{Filters: []*listenerpb.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerpb.Filter_TypedConfig{TypedConfig: hcm},
		}}}},
	}, nil
}

// route sends everything for name to the cluster of that name.
func route(name string) *routepb.RouteConfiguration {
	return &routepb.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routepb.VirtualHost{{
			Name:    name,
			Domains: []string{name},
			Routes: []*routepb.Route{{
				Match:  &routepb.RouteMatch{PathSpecifier: &routepb.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routepb.Route_Route{Route: &routepb.RouteAction{ClusterSpecifier: &routepb.RouteAction_Cluster{Cluster: name}}},
			}},
		}},
	}
}

// endpoints is the cluster's load assignment: addrs in one locality.
func endpoints(name string, addrs []string) (*endpointpb.ClusterLoadAssignment, error) {
	var lbs []*endpointpb.LbEndpoint
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("xds: endpoint %q: %w", a, err)
		}
		p, err := strconv.ParseUint(port, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("xds: endpoint %q: %w", a, err)
		}
		lbs = append(lbs, &endpointpb.LbEndpoint{HostIdentifier: &endpointpb.LbEndpoint_Endpoint{Endpoint: &endpointpb.Endpoint{
			Address: &corepb.Address{Address: &corepb.Address_SocketAddress{SocketAddress: &corepb.SocketAddress{
				Protocol:      corepb.SocketAddress_TCP,
				Address:       host,
				PortSpecifier: &corepb.SocketAddress_PortValue{PortValue: uint32(p)},
			}}},
		}}})
	}
	return &endpointpb.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints: []*endpointpb.LocalityLbEndpoints{{
			Locality:            &corepb.Locality{Region: "region-1", Zone: "zone-1", SubZone: "subzone-1"},
			LbEndpoints:         lbs,
			LoadBalancingWeight: wrapperspb.UInt32(1), // grpc ignores a locality without a weight
		}},
	}, nil
}

// CustomPolicy is a Cluster's load_balancing_policy that selects the
// grpc policy registered as name, with config, the way gRFC A52 has a
// control plane select a custom policy: an xds.type.v3.TypedStruct whose
// type URL ends in the policy's name and whose value is its JSON config.
func CustomPolicy(name string, config map[string]any) (*clusterpb.LoadBalancingPolicy, error) {
	v, err := structpb.NewStruct(config)
	if err != nil {
		return nil, err
	}
	a, err := anypb.New(&xdstypepb.TypedStruct{TypeUrl: "type.googleapis.com/" + name, Value: v})
	if err != nil {
		return nil, err
	}
	return &clusterpb.LoadBalancingPolicy{Policies: []*clusterpb.LoadBalancingPolicy_Policy{{
		TypedExtensionConfig: &corepb.TypedExtensionConfig{Name: name, TypedConfig: a},
	}}}, nil
}
