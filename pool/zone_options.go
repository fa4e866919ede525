package pool

import (
	"maps"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/addrs"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// Zone-aware routing: the options, and the pool's side of it (the
// backends' zones, the fleet's clients per zone). The split itself is the
// core's (internal/core/zone.go); docs/policies.md explains the rule.

// zoneOptions are the options of zone-aware routing.
type zoneOptions struct {
	zone       string          // this client's zone; "": routing by zone is off
	cidr       addrs.CIDRZones // address prefix → zone
	membership ZoneMembership  // the fleet's clients per zone; nil: see clientsOf
	minReady   int             // WithZoneMinBackends; 0: no minimum
}

// WithZone turns zone-aware routing on and names the zone this client runs
// in. Calls then stay in the client's zone while it holds at least its
// share of the fleet's ready backends, and the rest spill to the zones
// with spare capacity, in proportion to it (Envoy's zone-aware rule, see
// docs/policies.md), for every policy: the zone is chosen first, then the
// policy picks within it. The split is recomputed whenever a backend
// becomes ready, unhealthy or ejected. A retry may leave the zone when
// every backend of it was tried.
//
// A backend's zone is, in order: the one its resolver recorded with
// WithAddressZone, the one WithZonesByCIDR maps its address to, else
// unknown (its backends take only what the known zones spill). The
// fleet's clients are taken to be spread evenly over the zones that have
// backends, unless a ZoneMembership says otherwise (WithZoneMembership,
// or WithSubset's Membership when it is also one).
//
// With WithSubset, a client's subset has the zones in the proportions of
// the fleet's backends, as near as its size allows, and at least one
// backend of every zone while the size allows (see docs/fleets.md), so
// that the split it computes from its subset is the fleet's.
//
// Default: off, every backend takes calls whatever its zone. An empty
// zone makes New fail.
func WithZone(zone string) Option {
	return optionFunc(func(o *options) {
		if zone == "" {
			o.fail("WithZone(%q): empty zone name", zone)
			return
		}
		o.zones.zone = zone
	})
}

// WithZonesByCIDR gives the zone of backends whose resolver does not
// record one (see WithAddressZone) from their address: prefix → zone, as
// in {"10.0.0.0/20": "us-east-1a", "10.0.16.0/20": "us-east-1b"}, the
// layout of clouds whose subnets are per zone. A later WithZonesByCIDR
// replaces an earlier one. Default: none. An unparsable prefix, an empty
// zone name, or overlapping prefixes that map to different zones make New
// fail naming them.
func WithZonesByCIDR(prefixes map[string]string) Option {
	return optionFunc(func(o *options) {
		c, err := addrs.ParseCIDRZones(prefixes)
		if err != nil {
			o.fail("WithZonesByCIDR: %v", err)
			return
		}
		o.zones.cidr = c
	})
}

// WithZoneMembership gives the number of the fleet's clients in each zone,
// which WithZone's split needs to keep every backend equally loaded, from
// m (the etcdmembership module's Membership is one). Without it, the
// Membership of WithSubset is used when it is also a ZoneMembership, and
// otherwise the clients are taken to be spread evenly over the zones that
// have backends. Until m reports, the even spread is used. A nil m makes
// New fail.
func WithZoneMembership(m ZoneMembership) Option {
	return optionFunc(func(o *options) {
		if isNil(m) {
			o.fail("WithZoneMembership: nil ZoneMembership")
			return
		}
		o.zones.membership = m
	})
}

// WithZoneMinBackends sets the least number of backends that must be able
// to take calls for WithZone's split to apply (Envoy's min_cluster_size,
// whose default is 6): with fewer, the calls are spread over the ready
// backends in proportion to their weight, whatever their zone, as
// without WithZone. Stats.LocalShare then shows the local zone's share of
// that spread. Default 0: no minimum (the split is exact for a fleet of
// any size: it follows the ready backends at every change); 0 and 1 mean
// the same. Negative makes New fail.
func WithZoneMinBackends(n int) Option {
	return optionFunc(func(o *options) {
		if n < 0 {
			o.fail("WithZoneMinBackends(%d): must not be negative", n)
			return
		}
		o.zones.minReady = n
	})
}

// config sets the core's zone settings in cfg.
func (z zoneOptions) config(cfg *core.Config) {
	cfg.Zone, cfg.ZoneMinBackends = z.zone, z.minReady
}

// groups turns a resolver state into the pool's backends, each with its
// zone.
func (p *Pool) groups(s resolver.State) []core.Group {
	gs := addrs.Groups(s, weightOf)
	p.o.zones.cidr.Fill(gs)
	return gs
}

// zoneMembership is where the fleet's clients per zone come from, nil
// when nowhere (or zone-aware routing is off).
func (o *options) zoneMembership() ZoneMembership {
	switch {
	case o.zones.zone == "":
		return nil
	case o.zones.membership != nil:
		return o.zones.membership
	case o.subset != nil:
		if zm, ok := o.subset.m.(ZoneMembership); ok {
			return zm
		}
	}
	return nil
}

// startZones follows the fleet's clients per zone, when a ZoneMembership
// reports them, for the core's split.
func (p *Pool) startZones() {
	m := p.o.zoneMembership()
	if m == nil {
		return
	}
	p.watchAsync("ZoneMembership WatchZones", "counts", func() error {
		return m.WatchZones(p.ctx, func(clients map[string]int) {
			c := maps.Clone(clients)
			if c == nil {
				c = map[string]int{}
			}
			p.events.push(func(now time.Time) { p.core.SetZoneClients(now, c) })
		})
	})
}

// locality is the attempt metrics' grpcpool.locality of a call on b:
// none when zone-aware routing is off.
func (p *Pool) locality(b *core.Backend) telemetry.Locality {
	switch {
	case p.o.zones.zone == "":
		return telemetry.LocalityNone
	case b.Zone == p.o.zones.zone:
		return telemetry.Local
	}
	return telemetry.Remote
}
