package integration

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// TestDNSDiscovery follows a fleet behind a DNS name served by dnsmasq:
// svc.test resolves to three loopback addresses; two are added and then
// one is removed by rewriting dnsmasq's hosts file (SIGHUP). The pool
// re-resolves every second (WithResolveInterval) and must
//   - spread long-lived Bidi streams over the three,
//   - put new streams on the added backends,
//   - drain the removed one without failing a single unary call of a
//     steady load that runs through all of it.
func TestDNSDiscovery(t *testing.T) {
	const (
		name            = "svc.test"
		resolveInterval = time.Second
		firstStreams    = 90
		moreStreams     = 90
	)
	addrs := sameLoopbackPort(t, 2, 5) // 127.0.0.2 … 127.0.0.6, one port
	_, port, _ := net.SplitHostPort(addrs[0])
	f := startFleet(t, addrs...) // the two spare ones get traffic only once DNS names them
	first, added := addrs[:3], addrs[3:]

	dns := harness.StartDNS(t, map[string][]string{name: hostsOf(first)})
	target := fmt.Sprintf("dns://%s/%s:%s", dns.Addr, name, port)
	p := newPool(t, target,
		pool.WithSize(2),
		pool.WithPolicy(pool.LeastActive),
		pool.WithResolveInterval(resolveInterval),
	)
	waitReadyConns(t, p, map[string]int{first[0]: 2, first[1]: 2, first[2]: 2})
	ld := startLoad(t, p)

	// 1. Long-lived streams spread over the three resolved addresses.
	streams := testutil.OpenStreams(t, p, firstStreams)
	got := f.waitActive(t, first, firstStreams)
	// How evenly LeastActive spreads concurrent streams depends on the
	// machine's load: logged; every backend takes some.
	t.Logf("%d streams over 3 resolved backends: %s, max/mean %.2f", firstStreams, figures(first, got), backend.MaxOverMean(got))
	for i, a := range first {
		if got[i] == 0 {
			t.Errorf("backend %s got none of %d streams", a, firstStreams)
		}
	}

	// 2. Two addresses added to DNS: the pool connects to them (the time
	// it took, about a resolve interval, is logged), and new streams land
	// on them.
	start := time.Now()
	dns.SetRecords(t, map[string][]string{name: hostsOf(addrs)})
	waitReadyConns(t, p, map[string]int{addrs[0]: 2, addrs[1]: 2, addrs[2]: 2, addrs[3]: 2, addrs[4]: 2})
	took := time.Since(start)
	t.Logf("added %v to DNS: pool ready on them %v after the hosts file changed (resolve interval %v)",
		hostsOf(added), took.Round(time.Millisecond), resolveInterval)
	newer := testutil.OpenStreams(t, p, moreStreams)
	onNew := testutil.ByBackend(newer, added)
	t.Logf("%d new streams after adding %v: %s (new streams on added: %v)", moreStreams, hostsOf(added),
		figures(addrs, testutil.ByBackend(newer, addrs)), onNew)
	for i, a := range added {
		if onNew[i] == 0 {
			t.Errorf("added backend %s got none of %d new streams", a, moreStreams)
		}
	}
	streams = append(streams, newer...)
	got = f.waitActive(t, addrs, firstStreams+moreStreams)
	t.Logf("all %d streams over 5 backends: %s, max/mean %.2f", firstStreams+moreStreams, figures(addrs, got), backend.MaxOverMean(got))

	// 3. One address removed from DNS: its connections drain. No new call
	// goes to it, its open streams keep working until they end, and no
	// unary call of the steady load fails.
	gone, kept := addrs[0], addrs[1:]
	start = time.Now()
	dns.SetRecords(t, map[string][]string{name: hostsOf(kept)})
	waitGone(t, p, gone)
	t.Logf("removed %s from DNS: pool retired it %v after the hosts file changed", gone, time.Since(start).Round(time.Millisecond))
	f.expectNoMoreUnary(t, gone, kept)
	var onGone []*testutil.Stream
	for _, st := range streams {
		if st.Backend == gone {
			onGone = append(onGone, st)
		}
	}
	for _, st := range onGone {
		if _, err := st.RoundTrip("still there"); err != nil {
			t.Fatalf("stream on retired %s cut before it ended: %v", gone, err)
		}
	}
	b, _ := testutil.Find(p, gone)
	t.Logf("retired %s: %d streams still open and answering, draining connections %d", gone, len(onGone), b.Draining)
	testutil.EndAll(t, onGone)
	harness.Eventually(t, waitLong, "pool to close the drained connections of "+gone, func() error {
		if b, ok := testutil.Find(p, gone); ok {
			return fmt.Errorf("still listed: %+v", b)
		}
		return nil
	})
	if n := f.servers[gone].ActiveStreams(); n != 0 {
		t.Errorf("open streams on %s after its streams ended: got %d, want 0", gone, n)
	}
	f.waitMoreUnary(t, kept, 200)
	ld.Stop()
	ld.check(t, "through adding two and removing one address")
	t.Logf("unary calls per backend: %s", figures(addrs, f.unary(addrs)))
}
