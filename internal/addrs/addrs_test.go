package addrs_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/addrs"
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
