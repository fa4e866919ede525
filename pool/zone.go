package pool

import (
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/addrs"
)

// WithAddressZone returns addr carrying the zone of the backend it names,
// for resolvers that know it (the etcdmembership resolver reads it from
// each endpoint's metadata). The zone is kept in the address's
// Attributes. A zone set here takes precedence over WithZonesByCIDR.
func WithAddressZone(addr resolver.Address, zone string) resolver.Address {
	return addrs.WithZone(addr, zone)
}

// AddressZone returns the zone WithAddressZone set on addr, or "".
func AddressZone(addr resolver.Address) string { return addrs.Zone(addr) }
