package core_test

import (
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/connectivity"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest"
)

// Envoy's min_cluster_size: with ZoneMinBackends 6, a 1/4/4 fleet is
// split by zone while 6 or more backends can take calls; with 5 (four of
// b and c failing), the split is by capacity alone, as without zones; at
// 6 again, by zone. Picks follow each split, for every policy.
func TestZonesOffBelowMinBackends(t *testing.T) {
	for _, policy := range policies {
		t.Run(policyName(policy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := coretest.New(t, core.Config{Size: 1, Policy: policy, Zone: "a", ZoneMinBackends: 6, Rand: rand.New(rand.NewPCG(1, 2)).Uint64})
				f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, zoneGroups(1, 4, 4)) })
				f.ReadyAll()
				require.InDelta(t, 1.0/3, f.Picker().LocalShare(), 1e-12, "9 backends: Envoy's split")

				for _, key := range []string{"b1", "b2", "c1", "c2"} {
					setConn(f, key, connectivity.TransientFailure)
				}
				// 1/2/2 ready: by zone a would keep (1/5)/(1/3) = 3/5;
				// by capacity it keeps 1/5, and b and c take 2/5 each.
				require.InDelta(t, 0.2, f.Picker().LocalShare(), 1e-12, "5 backends: the capacity split")
				const n = 10000
				_, byZ := zonePicks(t, f, policy, n, nil)
				require.InDelta(t, n/5, byZ["a"], 5*40, "%v", byZ)   // σ = 40
				require.InDelta(t, 2*n/5, byZ["b"], 5*49, "%v", byZ) // σ ≈ 49
				require.InDelta(t, 2*n/5, byZ["c"], 5*49, "%v", byZ)

				setConn(f, "b1", connectivity.Ready)
				// 1/3/2 ready, clients even: a keeps (1/6)/(1/3) = 1/2.
				require.InDelta(t, 0.5, f.Picker().LocalShare(), 1e-12, "6 backends: Envoy's split again")
			})
		})
	}
}

// ZoneMinBackends 0 (the default) and 1 set no minimum: a fleet of two
// backends is split by zone.
func TestZonesNoMinBackends(t *testing.T) {
	for _, min := range []int{0, 1} {
		synctest.Test(t, func(t *testing.T) {
			f := coretest.New(t, core.Config{Size: 1, Zone: "a", ZoneMinBackends: min})
			f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, zoneGroups(1, 1)) })
			f.ReadyAll()
			require.Equal(t, 1.0, f.Picker().LocalShare())
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
		f := breakerFake(t, core.Config{Size: 1, Zone: "a", MaxEjectPercent: core.DefaultMaxEjectPercent, PanicPercent: core.DefaultPanicPercent}, time.Minute)
		f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, zoneGroups(2, 2, 2)) })
		f.ReadyAll()
		open := func(key string) {
			done, err := f.Backend(key).Breaker.Allow()
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
			require.InDelta(t, step.want, f.Picker().LocalShare(), 1e-12, "after %s's breaker opened", step.open)
		}
		// In panic every backend takes calls: a retry that tried a's
		// backends lands on b's and c's, b1 with them.
		var tried core.Tried
		tried.Add(f.Backend("a1"))
		tried.Add(f.Backend("a2"))
		byB, _ := zonePicks(t, f, core.RoundRobin, 400, &tried)
		require.Len(t, byB, 4, "%v", byB)
		require.Positive(t, byB["b1"], "%v", byB)
		_, byZ := zonePicks(t, f, core.RoundRobin, 600, nil)
		require.Equal(t, map[string]int{"a": 600}, byZ)
	})
}
