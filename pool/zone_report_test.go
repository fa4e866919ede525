package pool_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// zoneFleet starts counts[i] real Echo servers in zone "a"+i, on
// 127.0.(i+1).x loopback addresses, and returns them with their zones.
func zoneFleet(t *testing.T, counts ...int) ([]*backend.Server, []string) {
	t.Helper()
	var addrs, zones []string
	for i, n := range counts {
		for j := range n {
			addrs = append(addrs, fmt.Sprintf("127.0.%d.%d:0", i+1, j+1))
			zones = append(zones, string(rune('a'+i)))
		}
	}
	return testutil.StartBackendsAt(t, addrs...), zones
}

// zoneLoad makes calls through p from workers goroutines until stop is
// closed or each has made perWorker calls (0: no bound), every call
// marked idempotent; it returns the calls made and those that failed.
func zoneLoad(ctx context.Context, p *pool.Pool, workers, perWorker int, stop <-chan struct{}) (calls, failed int64) {
	var n, bad atomic.Int64
	var wg sync.WaitGroup
	c := echopb.NewEchoClient(p)
	for range workers {
		wg.Go(func() {
			for i := 0; perWorker == 0 || i < perWorker; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Unary(ctx, &echopb.EchoRequest{Message: "x"}, retry.Idempotent()); err != nil {
					bad.Add(1)
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return n.Load(), bad.Load()
}

// crossShare is the share of the attempts p placed outside its zone.
func crossShare(p *pool.Pool) float64 {
	st := p.Stats()
	var all, cross uint64
	for _, b := range st.Backends {
		all += b.Attempts
		if b.Zone != st.Zone {
			cross += b.Attempts
		}
	}
	return float64(cross) / float64(max(all, 1))
}

var reportCIDRs = []pool.Option{pool.WithZonesByCIDR(zoneCIDRs)}

// TestZoneReport prints the zone-aware routing figures of
// docs/policies.md ("Zone-aware routing, measured"), with real servers on
// loopback: 127.0.1.x, 127.0.2.x and 127.0.3.x are zones a, b and c. It
// runs only when GRPCPOOL_REPORT is set (about 15 s):
//
//	GRPCPOOL_REPORT=1 go test -run TestZoneReport -count=1 -v ./pool/
func TestZoneReport(t *testing.T) {
	if os.Getenv("GRPCPOOL_REPORT") == "" {
		t.Skip("set GRPCPOOL_REPORT=1 to print the zone-aware routing figures")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var b strings.Builder
	const workers = 8

	// 1. 2/2/2, one client in zone a.
	t.Run("local", func(t *testing.T) {
		bs, _ := zoneFleet(t, 2, 2, 2)
		p, _ := testutil.ReadyPool(t, bs, append(reportCIDRs, pool.WithZone("a"))...)
		calls, failed := zoneLoad(ctx, p, workers, 2500, nil)
		cross := crossShare(p)
		fmt.Fprintf(&b, "== 2/2/2 backends, one client in zone a, %d calls from %d goroutines ==\n", calls, workers)
		fmt.Fprintf(&b, "calls per backend %v, cross-zone %.2f %%, failed %d\n\n", unaries(bs), 100*cross, failed)
		assert.LessOrEqual(t, cross, 0.01)
		assert.Zero(t, failed)
	})

	// 2. Zone a's backends stop under load: retries, idempotent calls.
	t.Run("zone down", func(t *testing.T) {
		bs, _ := zoneFleet(t, 2, 2, 2)
		p, _ := testutil.ReadyPool(t, bs, append(reportCIDRs, pool.WithZone("a"),
			pool.WithRetry(retry.Policy{MaxAttempts: 5}))...)
		stop := make(chan struct{})
		var calls, failed int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			calls, failed = zoneLoad(ctx, p, workers, 0, stop)
		}()
		time.Sleep(time.Second)
		before := unaries(bs)
		bs[0].Stop()
		bs[1].Stop()
		time.Sleep(2 * time.Second)
		close(stop)
		<-done
		after := unaries(bs)
		var attempts uint64
		for _, be := range p.Stats().Backends {
			attempts += be.Attempts
		}
		bz, cz := after[2]+after[3]-before[2]-before[3], after[4]+after[5]-before[4]-before[5]
		fmt.Fprintf(&b, "== 2/2/2 backends, one client in zone a, zone a's servers stopped after 1 s of load (%d goroutines, WithRetry MaxAttempts 5, idempotent calls) ==\n", workers)
		fmt.Fprintf(&b, "%d calls, %d failed, %d retried; after the stop zone b took %d, zone c %d (b/c %.3f); local share now %.2f\n\n",
			calls, failed, int64(attempts)-calls, bz, cz, float64(bz)/float64(max(cz, 1)), p.Stats().LocalShare)
		assert.Zero(t, failed)
		assert.InDelta(t, 1, float64(bz)/float64(max(cz, 1)), 0.1)
	})

	// 3. 1/4/4, one client per zone, the same number of calls each.
	t.Run("1/4/4", func(t *testing.T) {
		bs, zones := zoneFleet(t, 1, 4, 4)
		ps := make([]*pool.Pool, 3)
		for i := range ps {
			ps[i], _ = testutil.ReadyPool(t, bs, append(reportCIDRs, pool.WithZone(string(rune('a'+i))))...)
		}
		before := unaries(bs) // ReadyPool's own calls: none, but be exact
		var wg sync.WaitGroup
		failed := make([]int64, 3)
		for i, p := range ps {
			wg.Go(func() { _, failed[i] = zoneLoad(ctx, p, workers/2, 1500, nil) })
		}
		wg.Wait()
		got := unaries(bs)
		var total int64
		for i := range got {
			got[i] -= before[i]
			total += got[i]
		}
		mean := float64(total) / float64(len(got))
		lo, hi := float64(got[0]), float64(got[0])
		for _, g := range got {
			lo, hi = min(lo, float64(g)), max(hi, float64(g))
		}
		var crossCalls float64
		tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
		fmt.Fprintf(&b, "== 1/4/4 backends in zones a/b/c, one client per zone, each %d calls from %d goroutines ==\n", 1500*workers/2, workers/2)
		fmt.Fprintln(tw, "client\tlocal share\tcross-zone")
		for i, p := range ps {
			c := crossShare(p)
			crossCalls += c
			fmt.Fprintf(tw, "zone %c\t%.1f %%\t%.1f %%\n", 'a'+i, 100*p.Stats().LocalShare, 100*c)
		}
		require.NoError(t, tw.Flush())
		cross := crossCalls / 3
		fmt.Fprintf(&b, "calls per backend %v (zones %v), mean %.0f: min %.3f×, max %.3f× of it; cross-zone %.1f %% of all calls (Envoy's minimum 22.2 %%); failed %v\n",
			got, zones, mean, lo/mean, hi/mean, 100*cross, failed)
		assert.LessOrEqual(t, hi/mean, 1.25)
		assert.GreaterOrEqual(t, lo/mean, 1/1.25)
		assert.InDelta(t, 2.0/9, cross, 0.05)
		assert.Equal(t, []int64{0, 0, 0}, failed)
	})
	t.Log("\n" + b.String())
}
