package lb

import (
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
)

func TestZoneConfig(t *testing.T) {
	c := Config{Zone: "a", ZonesByCIDR: map[string]string{"127.0.2.0/24": "b", "127.0.1.0/24": "a"}}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"zone":"a","zonesByCidr":{"127.0.1.0/24":"a","127.0.2.0/24":"b"}}`; string(js) != want {
		t.Fatalf("got %s, want %s", js, want)
	}
	got, err := ParseConfig(js)
	if err != nil {
		t.Fatal(err)
	}
	if !got.settings().equal(c.settings()) {
		t.Fatalf("round trip: got %+v, want %+v", got, c)
	}
	if other := (Config{Zone: "a", ZonesByCIDR: map[string]string{"127.0.1.0/24": "b"}}); other.settings().equal(c.settings()) {
		t.Fatal("a different zonesByCidr is the same settings")
	}
	for _, tc := range []struct{ js, want string }{
		{`{"zonesByCidr":{"10.0.0.0/33":"a"}}`, `zonesByCidr: "10.0.0.0/33": not a CIDR prefix`},
		{`{"zonesByCidr":{"10.0.0.0/8":""}}`, `zonesByCidr: "10.0.0.0/8": empty zone name`},
		{`{"zonesByCidr":{"10.0.0.0/8":"a","10.1.0.0/16":"b"}}`, `zonesByCidr: "10.1.0.0/16" (zone "b") overlaps "10.0.0.0/8" (zone "a")`},
		{`{"zonesByCidr":["10.0.0.0/8"]}`, `zonesByCidr: want an object of strings`},
		{`{"zone":3}`, `zone: want a string`},
		{`{"zoneClients":{"a":1}}`, `zoneClients: only with zone`},
		{`{"zone":"a","zoneClients":{"a":-1}}`, `zoneClients: "a": must not be negative, got -1`},
		{`{"zone":"a","zoneClients":{"":2}}`, `zoneClients: empty zone name`},
		{`{"zone":"a","zoneClients":{"a":"x"}}`, `zoneClients: want an object of integers`},
		{`{"zone":"a","zoneMinBackends":-1}`, `zoneMinBackends: must not be negative, got -1`},
		{`{"zoneMinBackends":6}`, `zoneMinBackends: only with zone`},
	} {
		_, err := ParseConfig([]byte(tc.js))
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%s): %v, want %q", tc.js, err, tc.want)
		}
	}
}

// zoneClients and zoneMinBackends go through JSON and are compared: the
// clients per zone apart from the rest (a change of them alone keeps the
// core, see TestZoneClientsFollowTheConfig).
func TestZoneClientsConfig(t *testing.T) {
	c := Config{Zone: "a", ZoneClients: map[string]int{"b": 3, "a": 1}, ZoneMinBackends: 6}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"zone":"a","zoneClients":{"a":1,"b":3},"zoneMinBackends":6}`; string(js) != want {
		t.Fatalf("got %s, want %s", js, want)
	}
	got, err := ParseConfig(js)
	if err != nil {
		t.Fatal(err)
	}
	gs, cs := got.settings(), c.settings()
	if !gs.equal(cs) || gs.zoneKey != cs.zoneKey {
		t.Fatalf("round trip: got %+v, want %+v", got, c)
	}
	other := Config{Zone: "a", ZoneClients: map[string]int{"a": 2}, ZoneMinBackends: 6}.settings()
	if !other.equal(cs) || other.zoneKey == cs.zoneKey {
		t.Fatal("other clients per zone: the same core, other counts")
	}
	if (Config{Zone: "a", ZoneClients: c.ZoneClients}).settings().equal(cs) {
		t.Fatal("another zoneMinBackends is the same settings")
	}
}

// zoneServers starts real servers on the given loopback addresses,
// counting their connections.
func zoneServers(t *testing.T, addrs ...string) []*server {
	t.Helper()
	var ss []*server
	for _, addr := range addrs {
		lis, err := net.Listen("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		cc := &connCounter{}
		b := backend.Start(lis, backend.Options{ServerOptions: []grpc.ServerOption{grpc.StatsHandler(cc)}})
		t.Cleanup(b.Stop)
		ss = append(ss, &server{Server: b, conns: cc})
	}
	return ss
}

var loopbackZones = map[string]string{"127.0.1.0/24": "a", "127.0.2.0/24": "b", "127.0.3.0/24": "c"}

// callsPerZone makes n calls through cc and returns how many the servers
// of each zone answered: ss are zones a, b, c of len(ss)/3 servers each.
func callsPerZone(t *testing.T, cc grpc.ClientConnInterface, ss []*server, n int) [3]int64 {
	t.Helper()
	before := unaryOf(ss)
	mustCall(t, cc, n)
	after := unaryOf(ss)
	var z [3]int64
	for i := range ss {
		z[i/(len(ss)/3)] += after[i] - before[i]
	}
	return z
}

// zoneMinBackends reaches the core: 1/1/1 real servers, the client in
// zone a. Without a minimum every call stays in a; with a minimum of 4
// (above the 3 ready) the calls spread over the three, a third each.
func TestZoneMinBackendsInConfig(t *testing.T) {
	ss := zoneServers(t, "127.0.1.1:0", "127.0.2.1:0", "127.0.3.1:0")
	for _, min := range []int{0, 4} {
		cc, _ := dial(t, ss, ServiceConfig(Config{Size: 1, Zone: "a", ZonesByCIDR: loopbackZones, ZoneMinBackends: min}))
		if min == 0 {
			waitConns(t, ss, 1)
			mustCall(t, cc, 50) // a connection READY at the server may not be at the client yet
		} else {
			waitAllCalled(t, cc, ss) // every backend ready
		}
		z := callsPerZone(t, cc, ss, 1500)
		t.Logf("zoneMinBackends %d: calls per zone %v", min, z)
		if min == 0 && z != [3]int64{1500, 0, 0} {
			t.Fatalf("no minimum: calls per zone %v, want all 1500 in a", z)
		}
		for i, n := range z { // a third each, σ ≈ 18
			if min == 4 && (n < 500-5*18 || n > 500+5*18) {
				t.Fatalf("below the minimum: calls per zone %v, want about 500 each (zone %c)", z, 'a'+i)
			}
		}
		_ = cc.Close()
	}
}

// The clients per zone in the config drive the split: 2/2/2 real
// servers, the client in zone a. By default (clients even) every call
// stays in a; with zoneClients {a: 5} (every client in a) a keeps a
// third and b and c take a third each; a new config with {a: 1, b: 1,
// c: 1} brings every call back to a, on the same connections.
func TestZoneClientsFollowTheConfig(t *testing.T) {
	ss := zoneServers(t, "127.0.1.1:0", "127.0.1.2:0", "127.0.2.1:0", "127.0.2.2:0", "127.0.3.1:0", "127.0.3.2:0")
	cfg := Config{Size: 1, Zone: "a", ZonesByCIDR: loopbackZones}
	cc, r := dial(t, ss, ServiceConfig(cfg))
	waitConns(t, ss, 1)
	mustCall(t, cc, 50) // a connection READY at the server may not be at the client yet
	if z := callsPerZone(t, cc, ss, 300); z != [3]int64{300, 0, 0} {
		t.Fatalf("calls per zone %v with clients even, want all 300 in a", z)
	}

	update := func(c Config) {
		st := testutil.State(addrsOf(ss)...)
		st.ServiceConfig = r.CC().ParseServiceConfig(ServiceConfig(c))
		if st.ServiceConfig.Err != nil {
			t.Fatal(st.ServiceConfig.Err)
		}
		r.UpdateState(st)
	}
	cfg.ZoneClients = map[string]int{"a": 5}
	update(cfg)
	// 1,500 calls: a third per zone, σ ≈ 18 each.
	z := callsPerZone(t, cc, ss, 1500)
	for i, n := range z {
		if n < 500-5*18 || n > 500+5*18 {
			t.Fatalf("calls per zone %v with every client in a: want about 500 each (zone %c)", z, 'a'+i)
		}
	}

	cfg.ZoneClients = map[string]int{"a": 1, "b": 1, "c": 1}
	update(cfg)
	if z := callsPerZone(t, cc, ss, 300); z != [3]int64{300, 0, 0} {
		t.Fatalf("calls per zone %v with clients even again, want all 300 in a", z)
	}
	for _, s := range ss {
		if got := s.conns.total.Load(); got != 1 {
			t.Errorf("%s: %d connections made, want 1: a change of the clients per zone keeps the connections", s.Name(), got)
		}
	}
}

// The policy routes by zone as the pool does: 2/2/2 real servers in three
// loopback zones, the client in zone b, every call stays in b.
func TestZonesKeepCallsLocal(t *testing.T) {
	ss := zoneServers(t, "127.0.1.1:0", "127.0.1.2:0", "127.0.2.1:0", "127.0.2.2:0", "127.0.3.1:0", "127.0.3.2:0")
	cc, _ := dial(t, ss, ServiceConfig(Config{Zone: "b", ZonesByCIDR: loopbackZones}))
	waitConns(t, ss, DefaultSize)
	mustCall(t, cc, 50) // a connection READY at the server may not be at the client yet
	before := unaryOf(ss)
	mustCall(t, cc, 200)
	got := unaryOf(ss)
	for i := range got {
		got[i] -= before[i]
	}
	if got[2]+got[3] != 200 || got[2] == 0 || got[3] == 0 {
		t.Fatalf("calls per server %v: want all 200 on the two of zone b", got)
	}
}
