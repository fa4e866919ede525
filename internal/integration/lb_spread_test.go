package integration

import (
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver/dns"

	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/lb"
)

func init() {
	// grpc's DNS resolver answers a ResolveNow at most every 30 s by
	// default; the scale-up test below re-resolves every second.
	dns.SetMinResolutionInterval(100 * time.Millisecond)
}

// newClientConn is grpc.NewClient over plaintext with the default service
// config sc ("" for none), connected at once and closed in t.Cleanup.
func newClientConn(t *testing.T, target, sc string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	if sc != "" {
		opts = append(opts, grpc.WithDefaultServiceConfig(sc))
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatalf("grpc.NewClient(%q): %v", target, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	cc.Connect()
	return cc
}

// TestLBPolicyBehindHAProxy: three backends behind haproxy (mode tcp,
// balance roundrobin), one address. A plain ClientConn with pick_first
// pins all 300 streams to one backend (max/mean 3.00); the same ClientConn
// with the policy at size 6 has six connections, which haproxy spreads two
// to a backend, and least_active spreads the streams over them: 100 on
// each (max/mean 1.00, at most 1.05 asserted).
func TestLBPolicyBehindHAProxy(t *testing.T) {
	const streams, size = 300, 6
	addrs := sameLoopbackPort(t, 2, 3)
	f := startCountingFleet(t, addrs...)
	hap := harness.StartHAProxy(t, addrs)
	target := "passthrough:///" + hap.Addr

	t.Run("pick_first", func(t *testing.T) {
		cc := newClientConn(t, target, "")
		ss := testutil.OpenStreams(t, cc, streams)
		got := f.waitActive(t, addrs, streams)
		t.Logf("pick_first via haproxy, %d streams: %s", streams, figures(addrs, got))
		if mm := backend.MaxOverMean(got); mm != 3 {
			t.Errorf("max/mean %.2f, want 3.00 (all on one backend)", mm)
		}
		testutil.EndAll(t, ss)
		f.waitActive(t, addrs, 0)
		_ = cc.Close()
		f.waitConns(t, addrs, 0)
	})

	t.Run("grpcpool size 6", func(t *testing.T) {
		cc := newClientConn(t, target, lb.ServiceConfig(lb.Config{Size: size, Policy: lb.LeastActive}))
		f.waitConns(t, addrs, size/3)
		ss := testutil.OpenStreams(t, cc, streams)
		got := f.waitActive(t, addrs, streams)
		mm := backend.MaxOverMean(got)
		t.Logf("policy %s size %d via haproxy, %d streams: %s", lb.Name, size, streams, figures(addrs, got))
		if mm > 1.05 {
			t.Errorf("max/mean %.2f, want at most 1.05", mm)
		}
		testutil.EndAll(t, ss)
		f.waitActive(t, addrs, 0)
	})
}

// TestLBPolicyFollowsAScaleUpByDNS: a ClientConn with the policy
// (least_active, size 2, re-resolving every second) on a name dnsmasq
// serves. 300 streams that never end sit on the first three backends;
// three more are added to DNS; the policy finds them by its periodic
// re-resolution (no connection broke), and the next 300 streams go to
// them, evening the spread: 100 on each of the six (at most 1.1
// asserted).
func TestLBPolicyFollowsAScaleUpByDNS(t *testing.T) {
	const name, streams = "svc.test", 300
	addrs := sameLoopbackPort(t, 2, 6)
	_, port, _ := net.SplitHostPort(addrs[0])
	f := startCountingFleet(t, addrs...)
	first, added := addrs[:3], addrs[3:]
	d := harness.StartDNS(t, map[string][]string{name: hostsOf(first)})
	cc := newClientConn(t, fmt.Sprintf("dns://%s/%s:%s", d.Addr, name, port),
		lb.ServiceConfig(lb.Config{Size: 2, Policy: lb.LeastActive, ResolveInterval: time.Second}))
	f.waitConns(t, first, 2)

	old := testutil.OpenStreams(t, cc, streams)
	defer testutil.EndAll(t, old)
	got := f.waitActive(t, first, streams)
	t.Logf("%d streams on the first three: %s", streams, figures(first, got))

	d.SetRecords(t, map[string][]string{name: hostsOf(addrs)})
	took := time.Now()
	f.waitConns(t, added, 2)
	// The new backends take calls once their connections are in the
	// policy's picker: least_active sends a unary call to the least
	// loaded, which they are.
	harness.Eventually(t, waitLong, "a unary call on each added backend", func() error {
		if _, err := callOnce(cc); err != nil {
			return err
		}
		for _, a := range added {
			if f.servers[a].Unary() == 0 {
				return fmt.Errorf("%s has no call yet", a)
			}
		}
		return nil
	})
	t.Logf("three backends added to DNS: connected and taking calls %v later (resolve interval 1s)", time.Since(took).Round(time.Millisecond))

	more := testutil.OpenStreams(t, cc, streams)
	defer testutil.EndAll(t, more)
	all := f.waitActive(t, addrs, 2*streams)
	mm := backend.MaxOverMean(all)
	t.Logf("after %d more streams: %s", streams, figures(addrs, all))
	if mm > 1.1 {
		t.Errorf("max/mean %.2f over the six, want at most 1.1", mm)
	}
}
