package addrs_test

import (
	"maps"
	"slices"
	"testing"

	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/addrs"
	"github.com/grpcpool/grpcpool/internal/core"
)

func one(resolver.Address) uint32 { return 1 }

func TestGroupsAreOnePerAddressWhenTheResolverListsAddresses(t *testing.T) {
	s := resolver.State{
		Addresses: []resolver.Address{{Addr: "a:1"}, {Addr: "b:1"}, {Addr: "a:1"}, {Addr: "a:1", ServerName: "x"}},
		Endpoints: []resolver.Endpoint{{Addresses: []resolver.Address{{Addr: "ignored:1"}}}},
	}
	gs := addrs.Groups(s, one)
	var keys []string
	for _, g := range gs {
		keys = append(keys, g.Key)
		if len(g.Addrs) != 1 {
			t.Errorf("group %s has %d addresses, want 1", g.Key, len(g.Addrs))
		}
	}
	if got, want := keys, []string{"a:1", "b:1", "a:1|x"}; !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
}

func TestGroupsAreOnePerEndpointWhenTheResolverListsEndpointsOnly(t *testing.T) {
	s := resolver.State{Endpoints: []resolver.Endpoint{
		{Addresses: []resolver.Address{{Addr: "a:1"}, {Addr: "a6:1"}}},
		{},
		{Addresses: []resolver.Address{{Addr: "b:1"}}},
	}}
	w := func(a resolver.Address) uint32 {
		if a.Addr == "b:1" {
			return 3
		}
		return 1
	}
	gs := addrs.Groups(s, w)
	if len(gs) != 2 {
		t.Fatalf("%d groups, want 2: %+v", len(gs), gs)
	}
	if gs[0].Key != "a:1" || len(gs[0].Addrs) != 2 {
		t.Errorf("first group %+v, want key a:1 with both addresses", gs[0])
	}
	if gs[1].Key != "b:1" || gs[1].Weight != 3 {
		t.Errorf("second group %+v, want key b:1 with weight 3", gs[1])
	}
}

func TestZoneRoundTrips(t *testing.T) {
	a := resolver.Address{Addr: "127.0.1.1:1"}
	if got := addrs.Zone(a); got != "" {
		t.Fatalf("Zone of a bare address = %q, want empty", got)
	}
	if got := addrs.Zone(addrs.WithZone(a, "a")); got != "a" {
		t.Fatalf("Zone = %q, want %q", got, "a")
	}
}

// Endpoint weights (grpc's weight package) are read whether the resolver
// lists endpoints only or addresses too; where an endpoint has none, the
// weight function of the address decides.
func TestGroupsTakeEndpointWeights(t *testing.T) {
	ep := func(w uint32, as ...string) resolver.Endpoint {
		e := resolver.Endpoint{}
		for _, a := range as {
			e.Addresses = append(e.Addresses, resolver.Address{Addr: a})
		}
		if w > 0 {
			e = weight.Set(e, weight.EndpointInfo{Weight: w})
		}
		return e
	}
	byAddr := func(a resolver.Address) uint32 {
		if a.Addr == "c:1" {
			return 7
		}
		return 1
	}
	eps := []resolver.Endpoint{ep(3, "a:1", "a6:1"), ep(0, "b:1"), ep(0, "c:1"), ep(5, "d:1")}
	weights := func(gs []core.Group) map[string]uint32 {
		m := make(map[string]uint32)
		for _, g := range gs {
			m[g.Key] = g.Weight
		}
		return m
	}
	for _, tc := range []struct {
		name string
		s    resolver.State
		want map[string]uint32
	}{
		{"endpoints only", resolver.State{Endpoints: eps},
			map[string]uint32{"a:1": 3, "b:1": 1, "c:1": 7, "d:1": 5}},
		{"addresses and endpoints", resolver.State{
			Addresses: []resolver.Address{{Addr: "a:1"}, {Addr: "a6:1"}, {Addr: "b:1"}, {Addr: "c:1"}, {Addr: "d:1"}, {Addr: "e:1"}},
			Endpoints: eps,
		}, map[string]uint32{"a:1": 3, "a6:1": 3, "b:1": 1, "c:1": 7, "d:1": 5, "e:1": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := weights(addrs.Groups(tc.s, byAddr)); !maps.Equal(got, tc.want) {
				t.Fatalf("weights %v, want %v", got, tc.want)
			}
		})
	}
}
