package etcdmembership

import (
	"context"
	"maps"
)

// WatchZones implements pool.ZoneMembership: it calls notify with the
// number of live clients in each zone (each client's Options.Zone; the
// clients with none, or of a version that records none, under "") once
// this client's place is known and whenever the counts change, until ctx
// ends (it returns ctx's error) or the Membership is closed (it returns
// ErrClosed). The counts are those of the slots: their sum is the count
// Watch reports, and every client of the fleet computes the same.
//
// Each client records its zone in a key of its own, prefix + "zones/" +
// its lease ID in hex, under its lease, before it takes a slot; a client
// that leaves or dies takes both keys away at once.
func (m *Membership) WatchZones(ctx context.Context, notify func(clients map[string]int)) error {
	return watchValue(ctx, m,
		func() map[string]int { return m.clients },
		maps.Equal[map[string]int],
		func(c map[string]int) { notify(maps.Clone(c)) })
}
