package addrs

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/core"
)

func TestCIDRZones(t *testing.T) {
	c, err := ParseCIDRZones(map[string]string{
		"127.0.1.0/24": "a", "127.0.2.0/24": "b", "10.0.0.0/8": "c", "10.1.0.0/16": "c", "fd00::/8": "v6",
	})
	require.NoError(t, err)
	for addr, want := range map[string]string{
		"127.0.1.7:50051": "a", "127.0.2.1": "b", "10.1.2.3:443": "c", "[fd00::1]:443": "v6",
		"[::ffff:127.0.1.9]:80": "a", "127.0.3.1:1": "", "example.com:443": "", "unix:///tmp/s": "",
	} {
		require.Equal(t, want, c.Of(addr), addr)
	}
	gs := []core.Group{
		{Key: "x", Addrs: []resolver.Address{{Addr: "127.0.1.1:1"}}},
		{Key: "y", Addrs: []resolver.Address{{Addr: "127.0.1.2:1"}}, Zone: "set"},
	}
	c.Fill(gs)
	require.Equal(t, "a", gs[0].Zone)
	require.Equal(t, "set", gs[1].Zone, "the address's own zone comes first")
}

func TestCIDRZonesBadInput(t *testing.T) {
	for _, tc := range []struct {
		m    map[string]string
		want string
	}{
		{map[string]string{"10.0.0.0/33": "a"}, `"10.0.0.0/33": not a CIDR prefix`},
		{map[string]string{"10.0.0.1": "a"}, `"10.0.0.1": not a CIDR prefix`},
		{map[string]string{"10.0.0.0/8": " "}, `"10.0.0.0/8": empty zone name`},
		{map[string]string{"10.0.0.0/8": "a", "10.1.0.0/16": "b"}, `"10.1.0.0/16" (zone "b") overlaps "10.0.0.0/8" (zone "a")`},
	} {
		_, err := ParseCIDRZones(tc.m)
		require.ErrorContains(t, err, tc.want)
	}
}

func TestGroupsCarryTheZone(t *testing.T) {
	gs := Groups(resolver.State{Addresses: []resolver.Address{WithZone(resolver.Address{Addr: "a:1"}, "z1"), {Addr: "b:1"}}},
		func(resolver.Address) uint32 { return 1 })
	require.Equal(t, "z1", gs[0].Zone)
	require.Equal(t, "", gs[1].Zone)
}
