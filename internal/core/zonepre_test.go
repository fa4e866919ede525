package core

import (
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/connectivity"
)

// Envoy's min_cluster_size: with ZoneMinBackends 6, a 1/4/4 fleet is
// split by zone while 6 or more backends can take calls; with 5 (four of
// b and c failing), the split is by capacity alone, as without zones; at
// 6 again, by zone. Picks follow each split, for every policy.
func TestZonesOffBelowMinBackends(t *testing.T) {
	for _, policy := range policies {
		t.Run(policyName(policy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(t, Config{Size: 1, Policy: policy, Zone: "a", ZoneMinBackends: 6, Rand: rand.New(rand.NewPCG(1, 2)).Uint64})
				f.do(func(k *Core, now time.Time) { k.Resolved(now, zoneGroups(1, 4, 4)) })
				f.readyAll()
				require.InDelta(t, 1.0/3, f.picker().LocalShare(), 1e-12, "9 backends: Envoy's split")

				for _, key := range []string{"b1", "b2", "c1", "c2"} {
					f.setConn(key, connectivity.TransientFailure)
				}
				// 1/2/2 ready: by zone a would keep (1/5)/(1/3) = 3/5;
				// by capacity it keeps 1/5, and b and c take 2/5 each.
				require.InDelta(t, 0.2, f.picker().LocalShare(), 1e-12, "5 backends: the capacity split")
				const n = 10000
				_, byZ := zonePicks(t, f, n, nil)
				require.InDelta(t, n/5, byZ["a"], 5*40, "%v", byZ)   // σ = 40
				require.InDelta(t, 2*n/5, byZ["b"], 5*49, "%v", byZ) // σ ≈ 49
				require.InDelta(t, 2*n/5, byZ["c"], 5*49, "%v", byZ)

				f.setConn("b1", connectivity.Ready)
				// 1/3/2 ready, clients even: a keeps (1/6)/(1/3) = 1/2.
				require.InDelta(t, 0.5, f.picker().LocalShare(), 1e-12, "6 backends: Envoy's split again")
			})
		})
	}
}

// ZoneMinBackends 0 (the default) and 1 set no minimum: a fleet of two
// backends is split by zone.
func TestZonesNoMinBackends(t *testing.T) {
	for _, min := range []int{0, 1} {
		synctest.Test(t, func(t *testing.T) {
			f := newFake(t, Config{Size: 1, Zone: "a", ZoneMinBackends: min})
			f.do(func(k *Core, now time.Time) { k.Resolved(now, zoneGroups(1, 1)) })
			f.readyAll()
			require.Equal(t, 1.0, f.picker().LocalShare())
		})
	}
}

// Envoy's panic threshold: Envoy turns zone-aware routing off in panic
// and routes to every host. The core's panic (PanicPercent of the
// breakers open) takes none out of the pickers, so every backend counts
// in the split at its full weight: the split of a healthy fleet, which
// loads every backend equally as Envoy's panic does, with the least
// cross-zone traffic. 2/2/2, client in a, ejection capped at 10 %: a1's
// breaker opens, a1 is out (a keeps 3/5); a2's opens, the cap keeps a2 in
// (3/5); b1's opens, 3 of 6 are open, the panic puts every backend back:
// a keeps all its calls.
func TestZonesInBreakerPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := breakerFake(t, Config{Size: 1, Zone: "a", MaxEjectPercent: DefaultMaxEjectPercent, PanicPercent: DefaultPanicPercent}, time.Minute)
		f.do(func(k *Core, now time.Time) { k.Resolved(now, zoneGroups(2, 2, 2)) })
		f.readyAll()
		open := func(key string) {
			done, err := f.backend(key).Breaker.Allow()
			require.NoError(t, err)
			done(errDown)
			synctest.Wait()
			time.Sleep(time.Second) // opened in this order
		}
		for _, step := range []struct {
			open string
			want float64
		}{{"a1", 0.6}, {"a2", 0.6}, {"b1", 1}} {
			open(step.open)
			require.InDelta(t, step.want, f.picker().LocalShare(), 1e-12, "after %s's breaker opened", step.open)
		}
		require.Len(t, f.picker().backends, 6, "in panic every backend takes calls")
		_, byZ := zonePicks(t, f, 600, nil)
		require.Equal(t, map[string]int{"a": 600}, byZ)
	})
}
