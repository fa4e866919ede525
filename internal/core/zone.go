package core

// Zone-aware routing (Envoy's rule). A client in the local zone keeps
// every call local while its zone holds at least its share of the fleet's
// ready capacity; when it holds less, it keeps upstream_local% /
// clients_local% of its calls local and sends the rest to the zones that
// hold more capacity than clients, in proportion to their surplus
// (upstream% − clients%). Every client doing so loads every backend
// equally with the least cross-zone traffic there can be.

// ZoneLoad is one zone's standing in the split.
type ZoneLoad struct {
	// Capacity is the zone's ready capacity: the count, or the sum of
	// the weights, of its backends that can take calls.
	Capacity float64
	// Clients is the zone's clients, as a count or a share (only the
	// proportions matter). Backends of an unknown zone are a zone with
	// no clients: they take only what the known zones spill.
	Clients float64
}

// ZoneSplit returns the share of the local client's calls each zone
// gets, indexed as zones; local is the index of the client's zone. The
// shares sum to 1 unless no zone has capacity (then they are all 0).
//
// The local zone keeps all its calls when its share of the capacity is at
// least its share of the clients, and upstream%/clients% of them
// otherwise (0 with no capacity); the rest goes to the other zones in
// proportion to their surplus, max(0, upstream% − clients%). When no
// zone has a surplus (rounding, or clients in zones without backends),
// the rest goes to them in proportion to their capacity.
func ZoneSplit(local int, zones []ZoneLoad) []float64 {
	shares := make([]float64, len(zones))
	var capTotal, cliTotal float64
	for _, z := range zones {
		capTotal += max(z.Capacity, 0)
		cliTotal += max(z.Clients, 0)
	}
	if capTotal <= 0 {
		return shares
	}
	up := func(i int) float64 { return max(zones[i].Capacity, 0) / capTotal }
	cl := func(i int) float64 {
		if cliTotal <= 0 {
			return 0
		}
		return max(zones[i].Clients, 0) / cliTotal
	}
	keep := 0.0
	if local >= 0 && local < len(zones) && up(local) > 0 {
		keep = 1
		if u, c := up(local), cl(local); u < c {
			keep = u / c
		}
	}
	if keep >= 1 {
		shares[local] = 1
		return shares
	}
	if local >= 0 && local < len(zones) {
		shares[local] = keep
	}
	spill := 1 - keep
	var surplus float64
	for i := range zones {
		if i != local {
			surplus += max(up(i)-cl(i), 0)
		}
	}
	for i := range zones {
		if i == local {
			continue
		}
		if surplus > 0 {
			shares[i] = spill * max(up(i)-cl(i), 0) / surplus
			continue
		}
		rest := capTotal
		if local >= 0 && local < len(zones) {
			rest -= max(zones[local].Capacity, 0)
		}
		if rest > 0 {
			shares[i] = spill * max(zones[i].Capacity, 0) / rest
		}
	}
	return shares
}

// CapacitySplit returns each zone's share of the ready capacity: the
// split of a client that ignores zones, every backend taking calls in
// proportion to its weight. The shares sum to 1 unless no zone has
// capacity (then they are all 0).
func CapacitySplit(zones []ZoneLoad) []float64 {
	shares := make([]float64, len(zones))
	var capTotal float64
	for _, z := range zones {
		capTotal += max(z.Capacity, 0)
	}
	if capTotal <= 0 {
		return shares
	}
	for i, z := range zones {
		shares[i] = max(z.Capacity, 0) / capTotal
	}
	return shares
}

// zoneSplit is the split of a picker's calls over the zones whose loads
// are loads, the local zone first, when ready backends can take calls:
// Envoy's (ZoneSplit), unless fewer than ZoneMinBackends backends are
// ready; then the split by capacity alone (CapacitySplit), as Envoy does
// below its min_cluster_size.
func (k *Core) zoneSplit(loads []ZoneLoad, ready int) []float64 {
	if ready < k.cfg.ZoneMinBackends {
		return CapacitySplit(loads)
	}
	return ZoneSplit(0, loads)
}
