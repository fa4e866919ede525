package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// TestL4VIP puts haproxy in mode tcp, balance roundrobin, in front of three
// backends: a virtual IP as a Kubernetes ClusterIP or a cloud L4 balancer
// is. It shows
//   - the problem: one grpc.ClientConn pins all of its 300 streams to one
//     backend (max/mean 3.00);
//   - the fix: a pool of 6 connections to the same address spreads them
//     (no backend without streams; the max/mean is logged);
//   - scale-up: after haproxy is reloaded with three more backends, a pool
//     with WithMaxConnAge replaces every connection, and new streams reach
//     all six.
//
// How evenly LeastActive spreads concurrent streams and how long the
// replacement takes depend on the machine's load: they are logged, not
// asserted; the waits are bounded by waitLong.
func TestL4VIP(t *testing.T) {
	const (
		streams    = 300
		size       = 6
		oldStreams = 30
		maxConnAge = 3 * time.Second
	)
	addrs := sameLoopbackPort(t, 2, 6) // 127.0.0.2 … 127.0.0.7
	f := startFleet(t, addrs...)
	first := addrs[:3]
	hap := harness.StartHAProxy(t, first)
	target := "passthrough:///" + hap.Addr

	t.Run("one ClientConn pins every stream to one backend", func(t *testing.T) {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("grpc.NewClient: %v", err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		ss := testutil.OpenStreams(t, cc, streams)
		got := f.waitActive(t, first, streams)
		mm := backend.MaxOverMean(got)
		t.Logf("grpc.ClientConn via haproxy, %d streams: %s", streams, figures(first, got))
		if want := 3.0; mm != want {
			t.Errorf("max/mean: got %.2f, want %.2f (all on one)", mm, want)
		}
		testutil.EndAll(t, ss)
		f.waitActive(t, first, 0)
	})

	t.Run("pool of 6 connections spreads them", func(t *testing.T) {
		p := newPool(t, target, pool.WithSize(size), pool.WithPolicy(pool.LeastActive))
		waitReadyConns(t, p, map[string]int{hap.Addr: size})
		ss := testutil.OpenStreams(t, p, streams)
		got := f.waitActive(t, first, streams)
		mm := backend.MaxOverMean(got)
		t.Logf("pool WithSize(%d) via haproxy, %d streams: %s, max/mean %.2f", size, streams, figures(first, got), mm)
		for i, a := range first {
			if got[i] == 0 {
				t.Errorf("backend %s got none of %d streams", a, streams)
			}
		}
		testutil.EndAll(t, ss)
		f.waitActive(t, first, 0)
	})

	t.Run("WithMaxConnAge follows backends added behind the VIP", func(t *testing.T) {
		p := newPool(t, target,
			pool.WithSize(size),
			pool.WithPolicy(pool.LeastActive),
			pool.WithMaxConnAge(maxConnAge),
		)
		waitReadyConns(t, p, map[string]int{hap.Addr: size})
		// A few streams opened before the reload; few, so that the reload
		// is done well before the first connection reaches its age.
		old := testutil.OpenStreams(t, p, oldStreams)
		f.waitActive(t, first, oldStreams)

		hap.SetServers(t, addrs)
		reloaded := time.Now()
		// Every connection is replaced one age after it was made (±10 %),
		// so by 1.1 × age after the reload all are newer than it; the time
		// it took is logged.
		harness.Eventually(t, waitLong, "every connection replaced after the reload", func() error {
			since := time.Since(reloaded)
			b, ok := testutil.Find(p, hap.Addr)
			if !ok {
				return fmt.Errorf("no backend %s", hap.Addr)
			}
			if b.Ready < size {
				return fmt.Errorf("ready %d, want %d", b.Ready, size)
			}
			for _, c := range b.Conns {
				if !c.Draining && c.Age > since {
					return fmt.Errorf("connection %d (age %v) predates the reload %v ago", c.ID, c.Age, since)
				}
			}
			return nil
		})
		t.Logf("haproxy reloaded with %d backends: all %d connections replaced %v later (max conn age %v)",
			len(addrs), size, time.Since(reloaded).Round(time.Millisecond), maxConnAge)

		// The streams opened before are still open on the old backends:
		// the draining connections and haproxy's old worker keep them.
		for _, st := range old {
			if _, err := st.RoundTrip("still there"); err != nil {
				t.Fatalf("stream opened before the reload, on %s: %v", st.Backend, err)
			}
		}
		before := f.active(addrs)
		ss := testutil.OpenStreams(t, p, streams)
		f.waitActive(t, addrs, int64(streams+len(old)))
		now := f.active(addrs)
		got := make([]int64, len(addrs))
		for i := range got {
			got[i] = now[i] - before[i]
		}
		t.Logf("%d new streams after the reload: %s, max/mean %.2f", streams, figures(addrs, got), backend.MaxOverMean(got))
		for i, a := range addrs {
			if got[i] == 0 {
				t.Errorf("backend %s got none of %d new streams", a, streams)
			}
		}
		testutil.EndAll(t, ss)
		testutil.EndAll(t, old)
		f.waitActive(t, addrs, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if procs, err := hap.ShowProc(ctx); err == nil {
			t.Logf("haproxy processes at the end:\n%s", procs)
		}
	})
}
