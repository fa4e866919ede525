package integration

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/pool"
)

// During a DNS outage the pool's DNS resolver backs off
// between failed lookups, and no ResolveNow bypasses that backoff: not the
// one a failing connection sends, not the periodic one of
// WithResolveInterval (one a second here).
//
// svc.test is served by dnsmasq, then removed from it (every lookup fails
// with NXDOMAIN) while its only backend stops, so the pool's connection
// fails too. dnsmasq logs every query; the test counts them over four
// seconds, from 1.5 s after the first failed lookup (once the quick first
// retries of the backoff, 100 ms doubling, have passed): the backoff allows
// one lookup there (two for a backoff of 1 s ×1.6 as grpc-go's), one lookup
// per ResolveNow gives four or more.
func TestResolveNowHonoursDNSFailureBackoff(t *testing.T) {
	const name = "svc.test"
	s, err := backend.Listen(backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	_, port, _ := net.SplitHostPort(s.Addr())
	dns := harness.StartDNS(t, map[string][]string{name: {"127.0.0.1"}})
	// Reconnect every 20 ms: connection failures ask for re-resolution as
	// often as the pool lets them.
	fast := grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1, MaxDelay: 20 * time.Millisecond},
		MinConnectTimeout: 200 * time.Millisecond,
	})
	p := newPool(t, fmt.Sprintf("dns://%s/%s:%s", dns.Addr, name, port),
		pool.WithSize(1), pool.WithResolveInterval(time.Second), pool.WithDialOptions(fast))
	waitReadyConns(t, p, map[string]int{s.Addr(): 1})

	dns.SetRecords(t, map[string][]string{}) // the outage: every lookup fails
	s.Stop()                                 // and the connection fails again and again
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	// The first failed lookup: every query from now on fails.
	before := dns.Queries("A", name)
	for dns.Queries("A", name) == before {
		if ctx.Err() != nil {
			t.Fatalf("no lookup of %s after the outage began", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
	outage := time.Now()
	at := func(d time.Duration) int {
		t.Helper()
		tm := time.NewTimer(time.Until(outage.Add(d)))
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		return dns.Queries("A", name)
	}
	from, to := at(1500*time.Millisecond), at(5500*time.Millisecond)
	if n := to - from; n > 2 {
		t.Errorf("%d lookups of %s between 1.5 s and 5.5 s after the first failed lookup of a DNS outage; the failure backoff allows at most 2", n, name)
	}
	t.Logf("A queries for %s: %d up to 1.5 s after the first failed lookup, %d in the 4 s after", name, from, to-from)
}
