package lb

import (
	"encoding/json"
	"maps"
	"slices"
)

// Zone-aware routing in the policy: the config's zone settings beyond
// zone and zonesByCidr (the clients per zone, the minimum of backends),
// and how a new config's clients per zone reach the core in use.

// validateZones reports, through bad, what is wrong with c's zoneClients
// and zoneMinBackends.
func (c Config) validateZones(bad func(field, format string, args ...any)) {
	if c.ZoneMinBackends < 0 {
		bad("zoneMinBackends", "must not be negative, got %d", c.ZoneMinBackends)
	} else if c.ZoneMinBackends > 0 && c.Zone == "" {
		bad("zoneMinBackends", "only with zone")
	}
	if len(c.ZoneClients) == 0 {
		return
	}
	if c.Zone == "" {
		bad("zoneClients", "only with zone")
	}
	for _, z := range slices.Sorted(maps.Keys(c.ZoneClients)) {
		switch n := c.ZoneClients[z]; {
		case z == "":
			bad("zoneClients", "empty zone name")
		case n < 0:
			bad("zoneClients", "%q: must not be negative, got %d", z, n)
		}
	}
}

// zoneSettings sets s's zone settings from c (valid).
func (s *settings) zoneSettings(c Config) {
	s.zone, s.zoneMin = c.Zone, c.ZoneMinBackends
	if len(c.ZoneClients) > 0 {
		js, _ := json.Marshal(c.ZoneClients) // keys sorted
		s.zoneKey = string(js)
	}
}

// zoneClientsLocked gives the core in use the clients per zone of set
// when they differ from those it has: the split moves, the connections
// stay.
func (b *lbBalancer) zoneClientsLocked(set settings) {
	g := b.cur
	if g.zoneKey == set.zoneKey {
		return
	}
	g.zoneKey = set.zoneKey
	var clients map[string]int // nil: even
	if set.zoneKey != "" {
		_ = json.Unmarshal([]byte(set.zoneKey), &clients) // made by zoneSettings
	}
	g.k.SetZoneClients(b.now(), clients)
}
