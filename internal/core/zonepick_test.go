package core_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest"
)

func policyName(p core.Policy) string {
	return [...]string{"round_robin", "least_active", "consistent_hash", "peak_ewma"}[p]
}

var policies = []core.Policy{core.RoundRobin, core.LeastActive, core.ConsistentHash, core.PeakEWMA}

// zoneGroups returns backends named by zone and number (a1, b1, b2, …):
// counts[i] of them in zone "a"+i.
func zoneGroups(counts ...int) []core.Group {
	var gs []core.Group
	for i, n := range counts {
		z := string(rune('a' + i))
		for j := range n {
			key := fmt.Sprintf("%s%d", z, j+1)
			gs = append(gs, core.Group{Key: key, Addrs: []resolver.Address{{Addr: key}}, Weight: 1, Zone: z})
		}
	}
	return gs
}

// zoneFake is a fake Core in zone zone with counts backends per zone,
// every one READY. Its randomness is a seeded PCG: the zone draw and the
// policy's draws must not be correlated, as successive values of
// newFake's Weyl sequence are.
func zoneFake(t *testing.T, policy core.Policy, zone string, counts ...int) *coretest.Fake {
	t.Helper()
	f := coretest.New(t, core.Config{Size: 1, Policy: policy, Zone: zone, Rand: rand.New(rand.NewPCG(1, 2)).Uint64})
	f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, zoneGroups(counts...)) })
	f.ReadyAll()
	return f
}

// zonePicks makes n picks (a key per pick under ConsistentHash), each
// released at once, and counts them per backend and per zone.
func zonePicks(t *testing.T, f *coretest.Fake, policy core.Policy, n int, tried *core.Tried) (byB, byZ map[string]int) {
	t.Helper()
	byB, byZ = map[string]int{}, map[string]int{}
	p := f.Picker()
	for i := range n {
		info := core.PickInfo{Tried: tried}
		if policy == core.ConsistentHash {
			info.Key, info.HasKey = fmt.Sprintf("key-%d", i), true
		}
		r, o := p.Pick(info)
		require.Equal(t, core.Picked, o)
		byB[r.Conn.Backend.Key]++
		byZ[r.Conn.Backend.Zone]++
		r.Conn.Release()
	}
	return byB, byZ
}

// With 2/2/2 backends and clients spread evenly (the default), a client
// in zone a keeps every call in a, spread over a's two backends.
func TestZonesKeepCallsLocal(t *testing.T) {
	for _, policy := range policies {
		t.Run(policyName(policy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := zoneFake(t, policy, "a", 2, 2, 2)
				require.Equal(t, 1.0, f.Picker().LocalShare())
				byB, byZ := zonePicks(t, f, policy, 600, nil)
				require.Equal(t, map[string]int{"a": 600}, byZ)
				require.InDelta(t, 300, byB["a1"], 30, "%v", byB)
			})
		})
	}
}

// With 1/4/4 backends and clients spread evenly, a client in zone a keeps
// a third of its calls on a1 and spreads the rest evenly over b and c:
// every backend of b and c a twelfth. Measured with the injected
// randomness, every policy matches the split.
func TestZonesSplitOneFourFour(t *testing.T) {
	for _, policy := range policies {
		t.Run(policyName(policy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := zoneFake(t, policy, "a", 1, 4, 4)
				require.InDelta(t, 1.0/3, f.Picker().LocalShare(), 1e-12)
				const n = 12000
				byB, byZ := zonePicks(t, f, policy, n, nil)
				// A zone's count is binomial: σ ≈ 52; a backend's ≈ 29.
				for _, z := range []string{"a", "b", "c"} {
					require.InDelta(t, n/3, byZ[z], 5*52, "%s of %v", z, byZ)
				}
				for _, key := range []string{"b1", "b2", "b3", "b4", "c1", "c2", "c3", "c4"} {
					require.InDelta(t, n/12, byB[key], 5*29, "%s of %v", key, byB)
				}
				t.Logf("%s: %v", policyName(policy), byB)
			})
		})
	}
}

// A client in zone b of the same fleet keeps all its calls in b.
func TestZonesSurplusZoneStaysLocal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := zoneFake(t, core.RoundRobin, "b", 1, 4, 4)
		require.Equal(t, 1.0, f.Picker().LocalShare())
		byB, byZ := zonePicks(t, f, core.RoundRobin, 400, nil)
		require.Equal(t, map[string]int{"b": 400}, byZ)
		require.Equal(t, map[string]int{"b1": 100, "b2": 100, "b3": 100, "b4": 100}, byB)
	})
}

// The clients' shares come from the membership when there is one: with
// every client in zone a, a 2/2/2 fleet stays even (a third local).
func TestZonesFollowClientShares(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := zoneFake(t, core.RoundRobin, "a", 2, 2, 2)
		f.Do(func(k *core.Core, now time.Time) { k.SetZoneClients(now, map[string]int{"a": 3}) })
		require.InDelta(t, 1.0/3, f.Picker().LocalShare(), 1e-12)
		f.Do(func(k *core.Core, now time.Time) { k.SetZoneClients(now, map[string]int{"a": 1, "b": 1, "c": 1}) })
		require.Equal(t, 1.0, f.Picker().LocalShare())
		f.Do(func(k *core.Core, now time.Time) { k.SetZoneClients(now, nil) })
		require.Equal(t, 1.0, f.Picker().LocalShare())
	})
}

// setConn reports every connection of the backend key as s.
func setConn(f *coretest.Fake, key string, s connectivity.State) {
	b := f.Backend(key)
	f.Do(func(k *core.Core, now time.Time) {
		for _, c := range b.Conns() {
			if c.State().Live() {
				k.ConnState(now, c, s, nil)
			}
		}
	})
}

// The split follows the ready backends at once: zone a's backends fail,
// every call goes to b and c evenly; one comes back, a keeps 3/5 (its 1/5
// of the capacity over its 1/3 of the clients).
func TestZonesSplitFollowsReadiness(t *testing.T) {
	for _, policy := range policies {
		t.Run(policyName(policy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := zoneFake(t, policy, "a", 2, 2, 2)
				setConn(f, "a1", connectivity.TransientFailure)
				require.InDelta(t, 0.6, f.Picker().LocalShare(), 1e-12)
				setConn(f, "a2", connectivity.TransientFailure)
				require.Equal(t, 0.0, f.Picker().LocalShare())
				byB, byZ := zonePicks(t, f, policy, 1200, nil)
				require.Zero(t, byZ["a"])
				require.InDelta(t, 600, byZ["b"], 5*17, "%v", byZ) // σ ≈ 17
				for _, key := range []string{"b1", "b2", "c1", "c2"} {
					require.InDelta(t, 300, byB[key], 5*15, "%s of %v", key, byB)
				}
				setConn(f, "a2", connectivity.Ready)
				require.InDelta(t, 0.6, f.Picker().LocalShare(), 1e-12)
			})
		})
	}
}

// A backend whose breaker opens is ejected and the split follows at once.
func TestZonesSplitFollowsEjection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := breakerFake(t, core.Config{Size: 1, Zone: "a"}, time.Minute)
		f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, zoneGroups(2, 2, 2)) })
		f.ReadyAll()
		require.Equal(t, 1.0, f.Picker().LocalShare())
		placed, ok := call(f, true) // a1 or a2 fails once: its breaker opens
		require.True(t, placed)
		require.False(t, ok)
		synctest.Wait()
		require.InDelta(t, 0.6, f.Picker().LocalShare(), 1e-12)
	})
}

// A retry leaves the zone when every backend of it was tried, and stays
// in it while one was not.
func TestZonesRetryLeavesTheZone(t *testing.T) {
	for _, policy := range policies {
		t.Run(policyName(policy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := zoneFake(t, policy, "a", 2, 2, 2)
				var one, both core.Tried
				one.Add(f.Backend("a1"))
				both.Add(f.Backend("a1"))
				both.Add(f.Backend("a2"))
				byB, _ := zonePicks(t, f, policy, 100, &one)
				require.Equal(t, map[string]int{"a2": 100}, byB)
				_, byZ := zonePicks(t, f, policy, 600, &both)
				require.Zero(t, byZ["a"], "%v", byZ)
				require.InDelta(t, 300, byZ["b"], 5*12, "%v", byZ) // σ ≈ 12
				var all core.Tried
				for _, key := range []string{"a1", "a2", "b1", "b2", "c1", "c2"} {
					all.Add(f.Backend(key))
				}
				_, byZ = zonePicks(t, f, policy, 60, &all) // every one tried: the zone drawn
				require.Equal(t, map[string]int{"a": 60}, byZ)
			})
		})
	}
}

// Without a zone every backend is picked, zones or not.
func TestZonesOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := zoneFake(t, core.RoundRobin, "", 2, 2, 2)
		require.Equal(t, 1.0, f.Picker().LocalShare())
		_, byZ := zonePicks(t, f, core.RoundRobin, 600, nil)
		require.Equal(t, map[string]int{"a": 200, "b": 200, "c": 200}, byZ)
	})
}

// Backends of an unknown zone take only the spill.
func TestZonesUnknownZoneTakesSpill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, Zone: "a"})
		gs := append(zoneGroups(1, 1), core.Group{Key: "x1", Addrs: []resolver.Address{{Addr: "x1"}}, Weight: 1})
		f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, gs) })
		f.ReadyAll()
		require.InDelta(t, 2.0/3, f.Picker().LocalShare(), 1e-12)
		byB, _ := zonePicks(t, f, core.RoundRobin, 3000, nil)
		require.InDelta(t, 2000, byB["a1"], 30, "%v", byB)
		require.InDelta(t, 1000, byB["x1"], 30, "%v", byB)
		require.Zero(t, byB["b1"])
	})
}

// Under ConsistentHash a key keeps its zone and its backend.
func TestZonesKeyKeepsItsBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := zoneFake(t, core.ConsistentHash, "a", 1, 4, 4)
		p := f.Picker()
		for i := range 50 {
			info := core.PickInfo{Key: fmt.Sprintf("user-%d", i), HasKey: true}
			r, o := p.Pick(info)
			require.Equal(t, core.Picked, o)
			first := r.Conn.Backend
			r.Conn.Release()
			for range 5 {
				r, _ := p.Pick(info)
				require.Same(t, first, r.Conn.Backend)
				r.Conn.Release()
			}
		}
	})
}

// A zone-aware pick allocates nothing, first attempt or retry.
func TestZonesPickAllocatesNothing(t *testing.T) {
	for _, policy := range policies {
		f := zoneFake(t, policy, "a", 1, 4, 4)
		p := f.Picker()
		var tr core.Tried
		tr.Add(f.Backend("a1"))
		for _, info := range []core.PickInfo{{}, {Tried: &tr}, {Key: "k", HasKey: true, Tried: &tr}} {
			allocs := testing.AllocsPerRun(200, func() {
				r, _ := p.Pick(info)
				r.Conn.Release()
			})
			require.Zero(t, allocs, "%s %+v", policyName(policy), info)
		}
	}
}

// A backend whose health check reports NOT_SERVING leaves the split at
// once, and comes back to it when it reports SERVING.
func TestZonesSplitFollowsHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, Zone: "a", HealthCheck: true})
		f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, zoneGroups(2, 2, 2)) })
		f.ReadyAll()
		health := func(key string, serving bool) {
			b := f.Backend(key)
			f.Do(func(k *core.Core, now time.Time) {
				for _, c := range b.Conns() {
					k.Health(now, c, serving, nil)
				}
			})
		}
		for _, key := range []string{"a1", "a2", "b1", "b2", "c1", "c2"} {
			health(key, true)
		}
		require.Equal(t, 1.0, f.Picker().LocalShare())
		health("a1", false)
		require.InDelta(t, 0.6, f.Picker().LocalShare(), 1e-12)
		health("a2", false)
		require.Equal(t, 0.0, f.Picker().LocalShare())
		_, byZ := zonePicks(t, f, core.RoundRobin, 100, nil)
		require.Zero(t, byZ["a"])
		health("a1", true)
		require.InDelta(t, 0.6, f.Picker().LocalShare(), 1e-12)
	})
}
