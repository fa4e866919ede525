package subset

import (
	"fmt"
	"slices"
	"testing"
)

// zoneKeys returns counts[i] keys in zone "a"+i, named by zone and number.
func zoneKeys(counts ...int) (keys, zones []string) {
	for i, n := range counts {
		z := string(rune('a' + i))
		for j := range n {
			keys = append(keys, fmt.Sprintf("%s-%03d", z, j))
			zones = append(zones, z)
		}
	}
	return keys, zones
}

func TestApportion(t *testing.T) {
	for _, tc := range []struct {
		counts []int
		size   int
		want   []int
	}{
		{[]int{30, 30, 30}, 9, []int{3, 3, 3}},
		{[]int{10, 40, 40}, 9, []int{1, 4, 4}},
		{[]int{5, 40, 45}, 9, []int{1, 4, 4}},   // a's quota 0.5 raised to 1, b's 4.0 kept, c's 4.5 rounded down
		{[]int{1, 100, 100}, 4, []int{1, 2, 1}}, // a at least 1; the rest by remainder, ties to the lower index
		{[]int{1, 100, 100}, 2, []int{0, 1, 1}}, // fewer than the zones: no minimum
		{[]int{2, 2, 50}, 20, []int{1, 1, 18}},  // quotas 0.74, 0.74, 18.5: each zone one, c the rest
		{[]int{3, 1}, 3, []int{2, 1}},           // never more than a zone has
		{[]int{50, 1, 1, 1, 1}, 5, []int{1, 1, 1, 1, 1}},
	} {
		if got := apportion(tc.counts, tc.size); !slices.Equal(got, tc.want) {
			t.Errorf("apportion(%v, %d) = %v, want %v", tc.counts, tc.size, got, tc.want)
		}
	}
}

// Every client of a fleet gets the zones in the fleet's proportions, each
// zone's backends chosen by Select over that zone's keys.
func TestSelectZones(t *testing.T) {
	keys, zones := zoneKeys(30, 30, 30)
	zoneOf := make(map[string]string)
	for i, k := range keys {
		zoneOf[k] = zones[i]
	}
	load := make(map[string]int)
	const clients = 300
	for index := range clients {
		got := SelectZones(keys, zones, index, 9)
		per := map[string]int{}
		for _, k := range got {
			per[zoneOf[k]]++
			load[k]++
		}
		if len(got) != 9 || per["a"] != 3 || per["b"] != 3 || per["c"] != 3 {
			t.Fatalf("client %d: %v, want 3 backends of each zone", index, got)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(got)))) != 9 {
			t.Fatalf("client %d: duplicates in %v", index, got)
		}
		if want := Select(keys[:30], index, 3); !slices.Equal(got[:3], want) {
			t.Fatalf("client %d: zone a's %v, want Select's %v", index, got[:3], want)
		}
	}
	// 300 clients × 3 per zone / 30 backends: 30 connections each, spread
	// as Select spreads a fleet of 30 backends in subsets of 3 (each
	// zone's choice is Select's, asserted above).
	lo, hi := clients, 0
	for _, n := range load {
		lo, hi = min(lo, n), max(hi, n)
	}
	t.Logf("connections per backend %d–%d (mean 30)", lo, hi)
}

func TestSelectZonesEdges(t *testing.T) {
	keys, zones := zoneKeys(2, 2)
	if got := SelectZones(keys, zones, 0, 4); !slices.Equal(got, keys) {
		t.Errorf("size = len(keys): %v, want all", got)
	}
	for _, tc := range []struct {
		keys, zones []string
		index, size int
	}{
		{nil, nil, 0, 1},
		{keys, zones[:3], 0, 1},
		{keys, zones, -1, 1},
		{keys, zones, 0, 0},
	} {
		if got := SelectZones(tc.keys, tc.zones, tc.index, tc.size); got != nil {
			t.Errorf("SelectZones(%v, %v, %d, %d) = %v, want nil", tc.keys, tc.zones, tc.index, tc.size, got)
		}
	}
}

// The local calls of a zone's clients load that zone's backends through
// the clients' subsets of it. With a fleet-wide index, a zone's clients
// hold scattered indexes; with an index within the zone (a membership per
// zone), they hold a run of them, as a fleet does, and spread their
// connections more evenly. 30/30/30 backends, subsets of 9, client i in
// zone i%3: the connections of zone a's clients on zone a's backends,
// least and most over the mean (docs/fleets.md).
func TestSelectZonesLocalSpread(t *testing.T) {
	keys, zones := zoneKeys(30, 30, 30)
	spread := func(clients int, index func(i int) int) (lo, hi float64) {
		load := make(map[string]int)
		for i := 0; i < clients; i += 3 { // zone a's clients
			for _, k := range SelectZones(keys, zones, index(i), 9)[:3] { // zone a's share
				load[k]++
			}
		}
		mean := float64(clients/3*3) / 30
		lo, hi = float64(clients), 0
		for _, k := range keys[:30] {
			lo, hi = min(lo, float64(load[k])/mean), max(hi, float64(load[k])/mean)
		}
		return lo, hi
	}
	for _, clients := range []int{300, 900} {
		flo, fhi := spread(clients, func(i int) int { return i })
		zlo, zhi := spread(clients, func(i int) int { return i / 3 })
		t.Logf("%d clients: fleet-wide index %.2f–%.2f, index within the zone %.2f–%.2f", clients, flo, fhi, zlo, zhi)
		if zhi-zlo >= fhi-flo {
			t.Errorf("%d clients: the index within the zone spreads %.2f–%.2f, no narrower than the fleet-wide one's %.2f–%.2f", clients, zlo, zhi, flo, fhi)
		}
	}
}

// SelectZones, like Select, is a contract between the clients of a fleet:
// clients of different versions must pick the same subsets.
func TestSelectZonesStable(t *testing.T) {
	keys, zones := zoneKeys(5, 40, 45)
	for _, tc := range []struct {
		index int
		want  []string
	}{
		{0, []string{"a-001", "b-005", "b-008", "b-009", "b-004", "c-028", "c-012", "c-042", "c-009"}},
		{65, []string{"a-002", "b-027", "b-037", "b-030", "b-039", "c-044", "c-026", "c-028", "c-018"}},
	} {
		if got := SelectZones(keys, zones, tc.index, 9); !slices.Equal(got, tc.want) {
			t.Errorf("SelectZones(…, %d, 9) = %q, want %q", tc.index, got, tc.want)
		}
	}
}
