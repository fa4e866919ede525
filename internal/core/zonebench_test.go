package core

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
)

// BenchmarkPickZones is BenchmarkPick's pick with zone-aware routing on
// (zone=a: three zones, the backends spread over them, the client in
// zone a with a third of the clients: every call stays local) and off,
// in the same run, so the ratio is what a reader compares. Under
// zone=a/1-4-4 the client's zone holds a ninth of the fleet: a third of
// its calls stay local and the draw spills the rest.
func BenchmarkPickZones(b *testing.B) {
	for _, n := range []int{6, 1000} {
		for _, policy := range []Policy{RoundRobin, LeastActive, ConsistentHash, PeakEWMA} {
			for _, zones := range []string{"off", "a", "a/1-4-4"} {
				b.Run(fmt.Sprintf("%s/backends=%d/zones=%s", policyName(policy), n, zones), func(b *testing.B) {
					p := zoneBenchCore(b, policy, n, zones).k.Picker()
					info := PickInfo{}
					if policy == ConsistentHash {
						info = PickInfo{Key: "user-1234", HasKey: true}
					}
					pickParallel(b, p, info)
				})
			}
		}
	}
}

// zoneBenchCore is benchCore with every backend in zone a, b or c: in
// turn ("off", "a"), or a ninth in a and four ninths in each of b and c
// ("a/1-4-4").
func zoneBenchCore(tb testing.TB, policy Policy, n int, zones string) *fakeSeam {
	tb.Helper()
	f := &fakeSeam{}
	cfg := Config{Size: 2, Policy: policy, Target: "bench"}
	if zones != "off" {
		cfg.Zone = "a"
	}
	f.k = New(cfg, f)
	gs := make([]Group, n)
	for i := range gs {
		key := fmt.Sprintf("10.%d.%d.%d:443", i/62500, i/250%250, i%250)
		z := string(rune('a' + i%3))
		if zones == "a/1-4-4" {
			z = string(rune('a' + min(i*9/n, 1) + min(max(i*9/n-4, 0), 1)))
		}
		gs[i] = Group{Key: key, Addrs: []resolver.Address{{Addr: key}}, Weight: 1, Zone: z}
	}
	now := time.Now()
	f.k.Resolved(now, gs)
	for _, b := range f.k.Backends() {
		for _, c := range b.Conns() {
			f.k.ConnState(now, c, connectivity.Ready, nil)
		}
	}
	f.k.Flush()
	return f
}
