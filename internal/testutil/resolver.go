package testutil

import (
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/grpcpool/grpcpool/pool"
)

var schemes atomic.Int64

// NewScheme returns a manual resolver under a scheme no other call of this
// package returned, so tests running in parallel do not share resolvers.
func NewScheme(prefix string) *manual.Resolver {
	return manual.NewBuilderWithScheme(fmt.Sprintf("%s%d", prefix, schemes.Add(1)))
}

// ManualTarget returns a manual resolver under a fresh scheme reporting
// addrs, and the target that uses it ("scheme:///svc.test:50051").
func ManualTarget(addrs ...string) (*manual.Resolver, string) {
	r := NewScheme("test")
	r.InitialState(State(addrs...))
	return r, r.Scheme() + ":///svc.test:50051"
}

// WeightedTarget is ManualTarget with a weight for each address
// (pool.WithAddressWeight).
func WeightedTarget(addrs []string, weights []uint32) (*manual.Resolver, string) {
	r := NewScheme("rv")
	as := make([]resolver.Address, len(addrs))
	for i, a := range addrs {
		as[i] = pool.WithAddressWeight(resolver.Address{Addr: a}, weights[i])
	}
	r.InitialState(resolver.State{Addresses: as})
	return r, r.Scheme() + ":///svc.test:50051"
}

// WeightedEndpoints returns one endpoint per address of addrs, the i-th
// with weight i+1 set the standard way (grpc's weight package), and the
// state that lists them: endpoints only, or their addresses too when
// withAddrs (as grpc's DNS resolver reports).
func WeightedEndpoints(addrs []string, withAddrs bool) resolver.State {
	eps := make([]resolver.Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = weight.Set(resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}}, weight.EndpointInfo{Weight: uint32(i + 1)})
	}
	s := resolver.State{Endpoints: eps}
	if withAddrs {
		s.Addresses = Addrs(addrs...)
	}
	return s
}

// Addrs returns resolver addresses for addrs.
func Addrs(addrs ...string) []resolver.Address {
	out := make([]resolver.Address, len(addrs))
	for i, a := range addrs {
		out[i] = resolver.Address{Addr: a}
	}
	return out
}

// State returns a resolver state listing addrs.
func State(addrs ...string) resolver.State {
	return resolver.State{Addresses: Addrs(addrs...)}
}
