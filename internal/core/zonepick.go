package core

import (
	"math"
	"slices"
	"time"
)

// Zone-aware routing in the pickers. With Config.Zone set, every picker
// holds one picker per zone that has ready backends (zonePickers), each
// over that zone's backends with the policy's own state for them, and the
// split's thresholds: a pick draws a number (the picker's randomness, or
// the call's key under ConsistentHash, so a key keeps its zone) and picks
// within the zone whose threshold it falls under, by the policy, with slow
// start and capped ejection as without zones. The split is ZoneSplit's,
// recomputed with every picker, so it follows backends becoming ready,
// unhealthy or ejected at once. A zone whose backends all refuse the call
// passes it to the others, from a random one; a retry goes to a zone that
// has an untried backend.

// zoneState is what a Core keeps per zone across pickers: the counters
// and the policy value of the zone's pickers, so that round-robin walks
// each zone's backends in turn and the load floor of one zone is not
// another's.
type zoneState struct {
	name string
	ctr  *counters
	pol  policy // the policy of the zone's last picker, which the next one's is built from
}

// zonePickers is the zone-aware part of a picker.
type zonePickers struct {
	pickers []*Picker // one per zone with ready backends, the local zone first when it has any
	thr     []uint64  // a draw d goes to the first pickers[i] with d < thr[i] (2^53 scale); thr[0] = MaxUint64: no draw
	local   float64   // the local zone's share of the calls
}

// zoneDrawBits is the resolution of the zone draw.
const zoneDrawBits = 53

// zoneOf returns the state of zone, made on first use.
func (k *Core) zoneOf(zone string) *zoneState {
	if zs := k.zones[zone]; zs != nil {
		return zs
	}
	if k.zones == nil {
		k.zones = make(map[string]*zoneState)
	}
	zs := &zoneState{name: zone, ctr: newCounters(k.cfg.Rand())}
	zs.pol = newPolicy(k.cfg, zs.ctr, k.clock)
	k.zones[zone] = zs
	return zs
}

// SetZoneClients records how many clients of the fleet run in each zone,
// the shares zone-aware routing splits by; nil means clients spread
// evenly over the zones that have backends (and the local one), as does
// a map without a positive count.
func (k *Core) SetZoneClients(now time.Time, clients map[string]int) {
	k.at = now
	if clients == nil {
		k.zoneClients = nil
	} else {
		k.zoneClients = make(map[string]float64, len(clients))
		for z, n := range clients {
			if n > 0 {
				k.zoneClients[z] = float64(n)
			}
		}
		if len(k.zoneClients) == 0 {
			k.zoneClients = nil // no counts: the even spread
		}
	}
	k.publish()
}

// LocalShare is the share of calls the picker keeps in the local zone, 1
// without zone-aware routing.
func (p *Picker) LocalShare() float64 {
	if p.zones == nil {
		return 1
	}
	return p.zones.local
}

// buildZones gives q (whose backends are set) its zone pickers: the
// split of the ready capacity over the zones, by the clients' shares, and
// one picker per zone with ready backends, whose policy is built from the
// zone's last one.
func (k *Core) buildZones(q *Picker) {
	local := k.cfg.Zone
	names := []string{local}
	seen := map[string]bool{local: true}
	addName := func(z string) {
		if !seen[z] {
			seen[z] = true
			names = append(names, z)
		}
	}
	resolved := make(map[*zoneState][]*Backend)
	for _, b := range k.order {
		resolved[b.zone] = append(resolved[b.zone], b)
	}
	var rest []string
	for zs := range resolved {
		if !seen[zs.name] {
			rest = append(rest, zs.name)
		}
	}
	for z := range k.zoneClients {
		if !seen[z] {
			rest = append(rest, z)
		}
	}
	slices.Sort(rest)
	for _, z := range rest {
		addName(z)
	}
	ready := make(map[*zoneState][]*pickBackend)
	for _, pb := range q.backends {
		ready[pb.b.zone] = append(ready[pb.b.zone], pb)
	}
	loads := make([]ZoneLoad, len(names))
	for i, z := range names {
		zs := k.zones[z]
		for _, pb := range ready[zs] {
			loads[i].Capacity += float64(pb.weight)
		}
		switch {
		case k.zoneClients != nil:
			loads[i].Clients = k.zoneClients[z]
		case z != "" && (i == 0 || len(resolved[zs]) > 0):
			loads[i].Clients = 1 // the default: clients spread evenly
		}
	}
	shares := k.zoneSplit(loads, len(q.backends))
	zp := &zonePickers{local: shares[0]}
	cum := 0.0
	for i, z := range names {
		zs := k.zones[z]
		pbs := ready[zs]
		if len(pbs) == 0 {
			continue
		}
		cum += shares[i]
		zp.pickers = append(zp.pickers, k.zonePicker(q, zs, pbs, resolved[zs]))
		t := uint64(math.MaxUint64) // every draw (the last zone: rounding leaves none out)
		if cum < 1 && len(zp.pickers) < len(ready) {
			t = uint64(cum * (1 << zoneDrawBits))
		}
		zp.thr = append(zp.thr, t)
	}
	q.zones = zp
}

// zonePicker builds the picker of zone zs within q: its ready backends
// pbs, over the resolved ones (ConsistentHash's ring), with the zone's
// counters and policy.
func (k *Core) zonePicker(q *Picker, zs *zoneState, pbs []*pickBackend, resolved []*Backend) *Picker {
	z := &Picker{
		policy: q.policy, rand: q.rand, clock: q.clock, ss: q.ss, changed: q.changed,
		ctr: zs.ctr, zone: zs, backends: pbs,
	}
	for _, pb := range pbs {
		z.ramping = z.ramping || pb.rampAt != 0
	}
	z.pol = zs.pol.next(z, resolved, k.ringGen)
	zs.pol = z.pol
	return z
}

// pickZones is the pick of a zone-aware picker: the zone the draw falls
// in, then, when its backends all refuse, the others from a random one.
// A retry goes to the first of them with an untried backend, and to a
// tried one only when every zone's were tried.
func (p *Picker) pickZones(info *PickInfo, key uint64, why *refusals) (Result, Outcome, bool) {
	zp := p.zones
	n := len(zp.pickers)
	first := 0
	if zp.thr[0] != math.MaxUint64 { // a split: draw the zone
		d := p.zoneDraw(info, key)
		for first < n-1 && d >= zp.thr[first] {
			first++
		}
	}
	if info.Tried.Len() == 0 {
		if r, o, done := zp.pickers[first].pickWith(key, info.HasKey, info.Tried, why); done || n == 1 {
			return r, o, done
		}
	}
	// The others, should the drawn zone refuse, from a random one of
	// them, so that what a zone cannot take is spread over the rest.
	rot := 0
	if n > 2 {
		rot = int(p.zoneDraw(info, key) % uint64(n-1))
	}
	if info.Tried.Len() == 0 {
		for k := 1; k < n; k++ {
			if r, o, done := zp.pickers[zoneAt(k, first, rot, n)].pickWith(key, info.HasKey, info.Tried, why); done {
				return r, o, true
			}
		}
		return Result{}, Fail, false
	}
	// A retry: each zone's policy sees the call's tried backends of its
	// zone only.
	all := info.Tried
	for pass := range 2 {
		for k := range n {
			z := zp.pickers[zoneAt(k, first, rot, n)]
			var tr Tried
			for _, b := range all.b[:all.n] {
				if b.zone == z.zone && b.entry.Load() != nil {
					tr.Add(b) // tried, of the zone, and still in its picker
				}
			}
			if (tr.Len() < len(z.backends)) != (pass == 0) {
				continue // pass 0: zones with an untried backend; pass 1: the others
			}
			if r, o, done := z.pickWith(key, info.HasKey, &tr, why); done {
				return r, o, true
			}
		}
	}
	return Result{}, Fail, false
}

// zoneDraw is a pick's draw of its zone, zoneDrawBits wide: random, or
// under ConsistentHash from the call's key, whose hash is key (Fibonacci
// hashing of it, apart from its place on the ring), so that a key keeps
// its zone.
func (p *Picker) zoneDraw(info *PickInfo, key uint64) uint64 {
	if info.HasKey && p.policy == ConsistentHash {
		return key * 0x9e3779b97f4a7c15 >> (64 - zoneDrawBits)
	}
	return p.rand() >> (64 - zoneDrawBits)
}

// zoneAt is the k-th of n zones a pick tries: the one drawn, then the
// others in order from the rot-th of them.
func zoneAt(k, first, rot, n int) int {
	if k == 0 {
		return first
	}
	i := (k - 1 + rot) % (n - 1)
	if i >= first {
		i++
	}
	return i
}
