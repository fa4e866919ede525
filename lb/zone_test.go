package lb

import (
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/internal/backend"
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
	} {
		_, err := ParseConfig([]byte(tc.js))
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%s): %v, want %q", tc.js, err, tc.want)
		}
	}
}

// The policy routes by zone as the pool does: 2/2/2 real servers in three
// loopback zones, the client in zone b, every call stays in b.
func TestZonesKeepCallsLocal(t *testing.T) {
	var ss []*server
	for _, addr := range []string{"127.0.1.1:0", "127.0.1.2:0", "127.0.2.1:0", "127.0.2.2:0", "127.0.3.1:0", "127.0.3.2:0"} {
		lis, err := net.Listen("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		cc := &connCounter{}
		b := backend.Start(lis, backend.Options{ServerOptions: []grpc.ServerOption{grpc.StatsHandler(cc)}})
		t.Cleanup(b.Stop)
		ss = append(ss, &server{Server: b, conns: cc})
	}
	cc, _ := dial(t, ss, ServiceConfig(Config{Zone: "b", ZonesByCIDR: map[string]string{
		"127.0.1.0/24": "a", "127.0.2.0/24": "b", "127.0.3.0/24": "c",
	}}))
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
