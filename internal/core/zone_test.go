package core_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/core"
)

// ZoneSplit is Envoy's zone-aware rule, exactly.
func TestZoneSplit(t *testing.T) {
	third := 1.0 / 3
	for _, tc := range []struct {
		name  string
		local int
		zones []core.ZoneLoad
		want  []float64
	}{
		{"2/2/2, client in a, clients even (the default): all local", 0, []core.ZoneLoad{{2, 1}, {2, 1}, {2, 1}}, []float64{1, 0, 0}},
		{"2/2/2, every client in a: the fleet stays even", 0, []core.ZoneLoad{{2, 1}, {2, 0}, {2, 0}}, []float64{third, third, third}},
		{"1/4/4, clients even, from a: 1/3 local, the rest even", 0, []core.ZoneLoad{{1, 1}, {4, 1}, {4, 1}}, []float64{third, third, third}},
		{"1/4/4, clients even, from b: all local", 1, []core.ZoneLoad{{1, 1}, {4, 1}, {4, 1}}, []float64{0, 1, 0}},
		{"0/3/3, clients even, from a: all spilled, even", 0, []core.ZoneLoad{{0, 1}, {3, 1}, {3, 1}}, []float64{0, 0.5, 0.5}},
		{"surplus, not capacity: 1/1/4 from a", 0, []core.ZoneLoad{{1, 1}, {1, 1}, {4, 1}}, []float64{0.5, 0, 0.5}},
		// Envoy's own example: clients 40/40/20 %, upstream 25/50/25 %:
		// 62.5 % local, surplus 10 % in b and 5 % in c.
		{"Envoy's example", 0, []core.ZoneLoad{{25, 40}, {50, 40}, {25, 20}}, []float64{0.625, 0.375 * 2 / 3, 0.375 / 3}},
		{"unknown zone takes spill only", 0, []core.ZoneLoad{{1, 1}, {1, 1}, {1, 0}}, []float64{2.0 / 3, 0, 1.0 / 3}},
		{"no capacity anywhere", 0, []core.ZoneLoad{{0, 1}, {0, 1}}, []float64{0, 0}},
		{"no clients known: all local", 0, []core.ZoneLoad{{1, 0}, {5, 0}}, []float64{1, 0}},
		{"clients only in a zone without backends", 0, []core.ZoneLoad{{0, 1}, {2, 0}, {6, 0}}, []float64{0, 0.25, 0.75}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := core.ZoneSplit(tc.local, tc.zones)
			require.InDeltaSlice(t, tc.want, got, 1e-12, "got %v, want %v", got, tc.want)
		})
	}
}

// With 1/4/4 backends and one client per zone, Envoy's minimum of
// cross-zone traffic is 2/9 (22.2 %), and every backend carries 1/9.
func TestZoneSplitFleet(t *testing.T) {
	zones := []core.ZoneLoad{{1, 1}, {4, 1}, {4, 1}}
	perBackend := []float64{0, 0, 0}
	cross := 0.0
	for local := range zones {
		s := core.ZoneSplit(local, zones)
		for z, share := range s {
			perBackend[z] += share / 3 / zones[z].Capacity
			if z != local {
				cross += share / 3
			}
		}
	}
	require.InDelta(t, 2.0/9, cross, 1e-12)
	require.InDeltaSlice(t, []float64{1.0 / 9, 1.0 / 9, 1.0 / 9}, perBackend, 1e-12)
}

// CapacitySplit is the split of a client that ignores zones: each zone
// its share of the ready capacity.
func TestCapacitySplit(t *testing.T) {
	require.InDeltaSlice(t, []float64{0.2, 0.4, 0.4}, core.CapacitySplit([]core.ZoneLoad{{1, 1}, {2, 1}, {2, 1}}), 1e-12)
	require.Equal(t, []float64{0, 0}, core.CapacitySplit([]core.ZoneLoad{{0, 1}, {0, 1}}))
	require.Equal(t, []float64{0, 1}, core.CapacitySplit([]core.ZoneLoad{{-1, 1}, {3, 0}}))
}
