// Package addrs turns what a resolver reports into the backends the
// decision core keeps: one per address, or one per endpoint (with all of
// its addresses) for resolvers, such as xDS, that report endpoints only.
// Both doors use it, so a backend is the same thing behind a pool and
// behind the load-balancing policy.
package addrs

import (
	epweight "google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/core"
)

// Groups returns the backends of s: one per address when s lists
// addresses, else one per endpoint, in the resolver's order, duplicates
// (by Key) dropped. A backend's weight is its endpoint's, set with grpc's
// weight package (google.golang.org/grpc/experimental/balancer/weight),
// also when s lists the endpoint's addresses; without one, weight gives
// it from the backend's first address.
// Its zone is the one WithZone recorded on its first address.
func Groups(s resolver.State, weight func(resolver.Address) uint32) []core.Group {
	var gs []core.Group
	seen := make(map[string]bool)
	add := func(as []resolver.Address, w uint32) {
		if len(as) == 0 {
			return
		}
		k := Key(as[0])
		if seen[k] {
			return
		}
		seen[k] = true
		if w == 0 {
			w = weight(as[0])
		}
		gs = append(gs, core.Group{Key: k, Addrs: as, Weight: w, Zone: Zone(as[0])})
	}
	if len(s.Addresses) > 0 {
		ew := endpointWeights(s.Endpoints)
		for _, a := range s.Addresses {
			add([]resolver.Address{a}, ew[Key(a)])
		}
		return gs
	}
	for _, e := range s.Endpoints {
		add(e.Addresses, epweight.FromEndpoint(e).Weight)
	}
	return gs
}

// endpointWeights maps the Key of every address of an endpoint with a
// weight to that weight; nil when no endpoint has one.
func endpointWeights(eps []resolver.Endpoint) map[string]uint32 {
	var m map[string]uint32
	for _, e := range eps {
		w := epweight.FromEndpoint(e).Weight
		if w == 0 {
			continue
		}
		if m == nil {
			m = make(map[string]uint32)
		}
		for _, a := range e.Addresses {
			m[Key(a)] = w
		}
	}
	return m
}

// Key identifies a backend by its first address: the address, and the
// server name when the resolver set one (two names behind one address are
// two backends).
func Key(a resolver.Address) string {
	if a.ServerName != "" {
		return a.Addr + "|" + a.ServerName
	}
	return a.Addr
}

type zoneKey struct{}

// WithZone returns a carrying zone in its Attributes, where a resolver
// that knows a backend's zone records it.
func WithZone(a resolver.Address, zone string) resolver.Address {
	a.Attributes = a.Attributes.WithValue(zoneKey{}, zone)
	return a
}

// Zone returns the zone WithZone recorded on a, or "".
func Zone(a resolver.Address) string {
	z, _ := a.Attributes.Value(zoneKey{}).(string)
	return z
}
