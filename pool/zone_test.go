package pool_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/telemetry"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// zoneCIDRs are the three zones of the loopback tests: 127.0.1.x,
// 127.0.2.x and 127.0.3.x (all of 127/8 is loopback on Linux).
var zoneCIDRs = map[string]string{"127.0.1.0/24": "a", "127.0.2.0/24": "b", "127.0.3.0/24": "c"}

func TestZoneOptionsRejectBadInput(t *testing.T) {
	for _, tc := range []struct {
		opt  pool.Option
		want string
	}{
		{pool.WithZone(""), `WithZone(""): empty zone name`},
		{pool.WithZonesByCIDR(map[string]string{"10.0.0.0/40": "a"}), `WithZonesByCIDR: "10.0.0.0/40": not a CIDR prefix`},
		{pool.WithZonesByCIDR(map[string]string{"10.0.0.0/8": ""}), `WithZonesByCIDR: "10.0.0.0/8": empty zone name`},
		{pool.WithZonesByCIDR(map[string]string{"10.0.0.0/8": "a", "10.2.0.0/16": "b"}), `WithZonesByCIDR: "10.2.0.0/16" (zone "b") overlaps "10.0.0.0/8" (zone "a")`},
		{pool.WithZoneMembership(nil), "WithZoneMembership: nil ZoneMembership"},
		{pool.WithZoneMinBackends(-1), "WithZoneMinBackends(-1): must not be negative"},
	} {
		_, err := pool.New("passthrough:///x", tc.opt)
		require.ErrorIs(t, err, pool.ErrInvalidOption)
		require.ErrorContains(t, err, tc.want)
	}
}

// Real servers in three zones by their loopback address, 2/2/2, the
// client in zone a: every call stays in a, spread over its two backends;
// Stats shows the zones and the local share. When a's servers stop,
// calls go to b and c.
func TestZonesKeepCallsLocalOverLoopback(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackendsAt(t, "127.0.1.1:0", "127.0.1.2:0", "127.0.2.1:0", "127.0.2.2:0", "127.0.3.1:0", "127.0.3.2:0")
	mp, collect := metricsReader(t)
	p, _ := testutil.ReadyPool(t, bs, pool.WithZone("a"), pool.WithZonesByCIDR(zoneCIDRs), pool.WithMeterProvider(mp))
	st := p.Stats()
	require.Equal(t, "a", st.Zone)
	require.Equal(t, 1.0, st.LocalShare)
	for i, b := range st.Backends {
		require.Equal(t, string(rune('a'+i/2)), b.Zone, b.Addr)
	}
	require.Contains(t, st.String(), "zone a: 100.0% local")
	c := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	for range 60 {
		_, err := c.Unary(ctx, &echopb.EchoRequest{Message: "x"})
		require.NoError(t, err)
	}
	require.Equal(t, []int64{30, 30, 0, 0, 0, 0}, unaries(bs))
	loc := collect(telemetry.AttemptDuration)
	local := 0.0
	for k, v := range loc {
		require.Contains(t, k, telemetry.AttrLocality+"=local", "%v", loc)
		local += v
	}
	require.Equal(t, 60.0, local)

	bs[0].Stop()
	bs[1].Stop()
	testutil.WaitFor(t, "zone a out of the split", func() bool { return p.Stats().LocalShare == 0 })
	for range 60 {
		_, err := c.Unary(ctx, &echopb.EchoRequest{Message: "x"})
		require.NoError(t, err)
	}
	got := unaries(bs)
	require.Equal(t, int64(60), got[2]+got[3]+got[4]+got[5], "%v", got)
	require.Positive(t, got[2]+got[3])
	require.Positive(t, got[4]+got[5])
	remote := 0.0
	for k, v := range collect(telemetry.AttemptDuration) {
		if strings.Contains(k, telemetry.AttrLocality+"=remote") {
			remote += v
		}
	}
	require.Equal(t, 60.0, remote)
}

// WithZoneMinBackends: a 1/1/1 fleet (3 ready backends) below a minimum
// of 4 is split by capacity, as without zones: a keeps a third of its
// calls. With no minimum it keeps them all.
func TestZoneMinBackends(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackendsAt(t, "127.0.1.1:0", "127.0.2.1:0", "127.0.3.1:0")
	for _, tc := range []struct {
		opts []pool.Option
		want float64
	}{
		{nil, 1},
		{[]pool.Option{pool.WithZoneMinBackends(3)}, 1},
		{[]pool.Option{pool.WithZoneMinBackends(4)}, 1.0 / 3},
	} {
		p, _ := testutil.ReadyPool(t, bs, append(tc.opts, pool.WithZone("a"), pool.WithZonesByCIDR(zoneCIDRs))...)
		testutil.WaitFor(t, "every backend ready", func() bool {
			for _, b := range p.Stats().Backends {
				if b.Ready == 0 {
					return false
				}
			}
			return true
		})
		require.InDelta(t, tc.want, p.Stats().LocalShare, 1e-12)
	}
}

// WithSubset's Membership gives the clients' shares when it is also a
// ZoneMembership.
func TestSubsetMembershipGivesZoneShares(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackendsAt(t, "127.0.1.1:0", "127.0.2.1:0", "127.0.3.1:0")
	p, _ := testutil.ReadyPool(t, bs, pool.WithZone("a"), pool.WithZonesByCIDR(zoneCIDRs),
		pool.WithSubset(3, zoneSubset{zoneCounts{"a": 2}}))
	testutil.WaitFor(t, "the membership's shares", func() bool {
		s := p.Stats().LocalShare
		return s > 0.333 && s < 0.334
	})
}

// zoneSubset is a Membership (index 0 of 1) that is also a ZoneMembership.
type zoneSubset struct{ zoneCounts }

func (zoneSubset) Watch(ctx context.Context, notify func(index, count int)) error {
	notify(0, 1)
	<-ctx.Done()
	return ctx.Err()
}

// The clients' shares come from a ZoneMembership: with every client in
// zone a, a 2/2/2 fleet keeps a third of a's calls local.
func TestZoneMembershipSetsTheShares(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackendsAt(t, "127.0.1.1:0", "127.0.1.2:0", "127.0.2.1:0", "127.0.2.2:0", "127.0.3.1:0", "127.0.3.2:0")
	p, _ := testutil.ReadyPool(t, bs, pool.WithZone("a"), pool.WithZonesByCIDR(zoneCIDRs),
		pool.WithZoneMembership(zoneCounts{"a": 5}))
	testutil.WaitFor(t, "the membership's shares", func() bool {
		s := p.Stats().LocalShare
		return s > 0.333 && s < 0.334
	})
}

// zoneCounts is a ZoneMembership that reports fixed counts.
type zoneCounts map[string]int

func (z zoneCounts) WatchZones(ctx context.Context, notify func(map[string]int)) error {
	notify(z)
	<-ctx.Done()
	return ctx.Err()
}

func unaries(bs []*backend.Server) []int64 {
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.Unary()
	}
	return out
}

func TestStatsStringShowsZones(t *testing.T) {
	s := pool.Stats{Target: "t", Zone: "a", LocalShare: 1.0 / 3, Backends: []pool.BackendStats{{Addr: "x", Zone: "a", Healthy: true}}}
	got := s.String()
	require.True(t, strings.HasPrefix(got, "pool t (round_robin, zone a: 33.3% local): 1 backends\nBACKEND  ZONE  READY"), got)
}
