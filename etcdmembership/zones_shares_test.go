package etcdmembership

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// zoneClient is one client of a zone-aware fleet: its membership in etcd
// (with its zone) and its pool over the etcd resolver.
type zoneClient struct {
	zone string
	m    *Membership
	p    *pool.Pool
}

// wantShares is the local share each client's split gives: Envoy's rule
// (core.ZoneSplit) over the backends per zone and the clients per zone.
func wantShares(zones []string, backends, clients map[string]int) map[string]float64 {
	loads := make([]core.ZoneLoad, len(zones))
	for i, z := range zones {
		loads[i] = core.ZoneLoad{Capacity: float64(backends[z]), Clients: float64(clients[z])}
	}
	out := make(map[string]float64, len(zones))
	for i, z := range zones {
		out[z] = core.ZoneSplit(i, loads)[i]
	}
	return out
}

// sharesAre waits until every client's pool has every backend ready and
// keeps want[its zone] of its calls local.
func sharesAre(t *testing.T, what string, cs []*zoneClient, backends int, want map[string]float64) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, what, func() error {
		for i, c := range cs {
			st := c.p.Stats()
			ready := 0
			for _, b := range st.Backends {
				if b.Ready > 0 {
					ready++
				}
			}
			if ready != backends {
				return fmt.Errorf("client %d (zone %s): %d backends ready, want %d", i, c.zone, ready, backends)
			}
			if math.Abs(st.LocalShare-want[c.zone]) > 1e-9 {
				return fmt.Errorf("client %d (zone %s): local share %.4f, want %.4f", i, c.zone, st.LocalShare, want[c.zone])
			}
		}
		return nil
	})
}

// load makes perClient calls through every client's pool at once and
// returns the calls each server answered and, per client, the share of
// its attempts that stayed in its zone.
func load(t *testing.T, cs []*zoneClient, servers []*backend.Server, perClient int) ([]int64, []float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := make([]int64, len(servers))
	for i, s := range servers {
		before[i] = s.Unary()
	}
	attempts := func(p *pool.Pool) (local, all uint64) {
		for _, b := range p.Stats().Backends {
			all += b.Attempts
			if b.Zone == p.Stats().Zone {
				local += b.Attempts
			}
		}
		return local, all
	}
	base := make([][2]uint64, len(cs))
	for i, c := range cs {
		base[i][0], base[i][1] = attempts(c.p)
	}
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			e := echopb.NewEchoClient(c.p)
			for range perClient {
				if _, err := e.Unary(ctx, &echopb.EchoRequest{Message: "x"}); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "client %d", i)
	}
	got := make([]int64, len(servers))
	for i, s := range servers {
		got[i] = s.Unary() - before[i]
	}
	local := make([]float64, len(cs))
	for i, c := range cs {
		l, a := attempts(c.p)
		local[i] = float64(l-base[i][0]) / float64(a-base[i][1])
	}
	return got, local
}

// TestZoneSharesFromEtcd: the clients' zone counts that etcdmembership
// keeps drive the routing of real pools. Nine real backends, 1/4/4 on
// 127.0.1.1, 127.0.2.1–4 and 127.0.3.1–4 (zones a, b, c), register
// through etcd's naming package with their zone; five clients join the
// fleet in zones a, b, b, b, c, each with a pool over the etcd resolver,
// WithZone(its zone) and WithZoneMembership(its membership). Asserted:
//   - every client keeps the local share Envoy's rule gives for clients
//     {a:1, b:3, c:1} (a 5/9, b 20/27, c 1), not the even default's
//     (a 1/3, b 1, c 1);
//   - with every client making the same number of calls, every backend
//     carries the mean load within 1.25×, and each client's calls stay
//     local in the proportion of its share;
//   - when a client of b leaves (Close), the others follow the counts
//     {a:1, b:2, c:1} (a 4/9, b 8/9).
func TestZoneSharesFromEtcd(t *testing.T) {
	const target = "services/echo-zoned"
	backends := map[string]int{"a": 1, "b": 4, "c": 4}
	zones := []string{"a", "b", "c"}
	var hosts []string
	for i, z := range zones {
		for j := range backends[z] {
			hosts = append(hosts, fmt.Sprintf("127.0.%d.%d", i+1, j+1))
		}
	}
	addrs, servers, cli, _ := zonedFleet(t, target, hosts...)
	var cs []*zoneClient
	for _, z := range []string{"a", "b", "b", "b", "c"} {
		c := &zoneClient{zone: z, m: joinZone(t, cli, "/fleets/echo-zoned-clients/", z)}
		c.p = testutil.NewPool(t, "etcd:///"+target, pool.WithResolvers(NewResolver(cli)),
			pool.WithSize(1), pool.WithZone(z), pool.WithZoneMembership(c.m))
		cs = append(cs, c)
	}

	counted := wantShares(zones, backends, map[string]int{"a": 1, "b": 3, "c": 1})
	even := wantShares(zones, backends, map[string]int{"a": 1, "b": 1, "c": 1})
	require.InDeltaMapValues(t, map[string]float64{"a": 5.0 / 9, "b": 20.0 / 27, "c": 1}, counted, 1e-12)
	require.NotEqual(t, even["a"], counted["a"], "the counts must move the split away from the even default")
	require.NotEqual(t, even["b"], counted["b"])
	sharesAre(t, "every client's split from the counts {a:1, b:3, c:1}", cs, len(addrs), counted)

	const perClient = 900 // 4,500 calls: 500 per backend when balanced
	got, local := load(t, cs, servers, perClient)
	mean := float64(testutil.Sum(got)) / float64(len(got))
	lo, hi := float64(slices.Min(got))/mean, float64(slices.Max(got))/mean
	t.Logf("calls per backend %v (1/4/4 in a/b/c), mean %.0f: %.3f–%.3f× of it; local per client %.3f",
		got, mean, lo, hi, local)
	require.LessOrEqual(t, hi, 1.25, "calls per backend %v", got)
	require.GreaterOrEqual(t, lo, 1/1.25, "calls per backend %v", got)
	for i, c := range cs {
		// 900 draws at p = 5/9: σ ≈ 0.017 of the calls; 0.08 is over 4.5 σ.
		require.InDelta(t, counted[c.zone], local[i], 0.08, "client %d (zone %s) local share of its calls", i, c.zone)
	}

	// A client of b leaves: its pool closes, its membership too.
	require.NoError(t, cs[1].p.Close())
	require.NoError(t, cs[1].m.Close())
	cs = slices.Delete(cs, 1, 2)
	after := wantShares(zones, backends, map[string]int{"a": 1, "b": 2, "c": 1})
	require.InDeltaMapValues(t, map[string]float64{"a": 4.0 / 9, "b": 8.0 / 9, "c": 1}, after, 1e-12)
	sharesAre(t, "every client's split from the counts {a:1, b:2, c:1}", cs, len(addrs), after)
}

// TestSubsetsWithinZonesFromEtcd runs docs/fleets.md's recipe for
// subsets with zones on real components: 6/6/6 real backends in zones
// a, b, c registered in etcd; six clients, two per zone, each joined
// twice — to the fleet's membership with its zone (the counts) and to its
// zone's own (its index within the zone), at sibling prefixes — and each
// pool WithSubset(6, zone's membership), WithZoneMembership(fleet's).
// Asserted: every client holds 2 backends of each zone, the two clients
// of a zone hold indexes 0 and 1 of it and so different local backends,
// the fleet counts {a:2, b:2, c:2}, and every client keeps all its calls
// local.
func TestSubsetsWithinZonesFromEtcd(t *testing.T) {
	const target = "services/echo-subsets"
	var hosts []string
	for z := 1; z <= 3; z++ {
		for i := 1; i <= 6; i++ {
			hosts = append(hosts, fmt.Sprintf("127.0.%d.%d", z, i))
		}
	}
	_, _, cli, _ := zonedFleet(t, target, hosts...)
	var cs []*zoneClient
	locals := map[string][]*Membership{}
	for _, z := range []string{"a", "b", "c", "a", "b", "c"} {
		fleet := joinZone(t, cli, "/fleets/echo-subsets/all/", z)
		local := joinZone(t, cli, "/fleets/echo-subsets/zone-"+z+"/", "")
		locals[z] = append(locals[z], local)
		c := &zoneClient{zone: z, m: fleet}
		c.p = testutil.NewPool(t, "etcd:///"+target, pool.WithResolvers(NewResolver(cli)), pool.WithSize(1),
			pool.WithZone(z), pool.WithSubset(6, local), pool.WithZoneMembership(fleet))
		cs = append(cs, c)
	}
	for z, ms := range locals {
		converged(t, "zone "+z+"'s own membership", ms)
	}
	sharesAre(t, "every client's subset ready, all calls local", cs, 6, map[string]float64{"a": 1, "b": 1, "c": 1})
	harness.Eventually(t, 20*time.Second, "every client with 2 backends per zone, a zone's two clients on different local ones", func() error {
		localOf := map[string][]string{}
		for i, c := range cs {
			per := map[string]int{}
			for _, b := range c.p.Stats().Backends {
				if b.Removed {
					continue
				}
				per[b.Zone]++
				if b.Zone == c.zone {
					localOf[c.zone] = append(localOf[c.zone], b.Addr)
				}
			}
			if !maps.Equal(per, map[string]int{"a": 2, "b": 2, "c": 2}) {
				return fmt.Errorf("client %d (zone %s): backends per zone %v", i, c.zone, per)
			}
		}
		for z, as := range localOf {
			if slices.Sort(as); len(slices.Compact(as)) != 4 {
				return fmt.Errorf("zone %s: its clients' local backends %v, want 4 different", z, as)
			}
		}
		return nil
	})
}
