package pool

import (
	"google.golang.org/grpc/resolver"
)

type weightKey struct{}

// WithAddressWeight returns addr carrying weight w, for resolvers to report
// backends of unequal size: RoundRobin gives such a backend w shares of the
// calls (smooth weighted round-robin, no bursts), LeastActive compares
// active calls divided by weight, ConsistentHash gives it w shares of the
// keys. A weight of 0 is taken as 1, the weight of addresses without one.
// The weight is kept in the address's BalancerAttributes.
//
// The pool (and the grpcpool policy of package lb) also reads weights
// where grpc's own weight package keeps them, on resolver.Endpoint:
//
//	ep = weight.Set(ep, weight.EndpointInfo{Weight: 3}) // google.golang.org/grpc/experimental/balancer/weight
//
// whether the resolver lists endpoints only or their addresses too (as
// grpc's DNS resolver does). An endpoint's weight, when set and not 0,
// is the weight of the backend of each of its addresses, over one set
// with WithAddressWeight; Stats shows the weight in use.
func WithAddressWeight(addr resolver.Address, w uint32) resolver.Address {
	if w == 0 {
		w = 1
	}
	addr.BalancerAttributes = addr.BalancerAttributes.WithValue(weightKey{}, w)
	return addr
}

// AddressWeight returns the weight WithAddressWeight set on addr, or 1
// (an endpoint's weight is read with weight.FromEndpoint).
func AddressWeight(addr resolver.Address) uint32 { return weightOf(addr) }

func weightOf(a resolver.Address) uint32 {
	if w, ok := a.BalancerAttributes.Value(weightKey{}).(uint32); ok && w > 0 {
		return w
	}
	return 1
}
