// Package addrs turns what a resolver reports into the backends the
// decision core keeps: one per address, or one per endpoint (with all of
// its addresses) for resolvers, such as xDS, that report endpoints only.
// Both doors use it, so a backend is the same thing behind a pool and
// behind the load-balancing policy.
package addrs

import (
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/core"
)

// Groups returns the backends of s: one per address when s lists
// addresses, else one per endpoint, in the resolver's order, duplicates
// (by Key) dropped. weight gives a backend's weight from its first
// address; its zone is the one WithZone recorded there.
func Groups(s resolver.State, weight func(resolver.Address) uint32) []core.Group {
	var gs []core.Group
	seen := make(map[string]bool)
	add := func(as []resolver.Address) {
		if len(as) == 0 {
			return
		}
		k := Key(as[0])
		if seen[k] {
			return
		}
		seen[k] = true
		gs = append(gs, core.Group{Key: k, Addrs: as, Weight: weight(as[0]), Zone: Zone(as[0])})
	}
	if len(s.Addresses) > 0 {
		for _, a := range s.Addresses {
			add([]resolver.Address{a})
		}
		return gs
	}
	for _, e := range s.Endpoints {
		add(e.Addresses)
	}
	return gs
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
