package pool

import (
	"context"

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

// ZoneMembership reports where a fleet's clients are: how many clients
// run in each zone. Zone-aware routing (WithZone) needs each zone's share
// of the clients to keep every backend equally loaded; without a
// ZoneMembership it takes the clients to be spread evenly over the zones
// that have backends. The etcdmembership module's Membership is one,
// recording each client's zone in its lease, so every client computes the
// same split.
//
// Implementations must be safe for concurrent use.
type ZoneMembership interface {
	// WatchZones calls notify with the number of clients in each zone as
	// soon as it is known and again whenever it changes, until ctx ends;
	// then it returns ctx's error. It returns earlier, with an error, only
	// when it can deliver no more counts; the pool keeps the last counts it
	// had. notify is never called concurrently with itself, nor after
	// WatchZones has returned, and must not keep the map.
	WatchZones(ctx context.Context, notify func(clients map[string]int)) error
}
