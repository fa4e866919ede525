package pool_test

import (
	"cmp"
	"context"
	"net"
	"runtime/metrics"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// BenchmarkUnaryInterleaved compares sequential unary calls through a
// pool of size 1 with the same calls through a raw *grpc.ClientConn, both
// to one Echo server over bufconn (no kernel sockets), in alternating
// batches within one benchmark, so that load from elsewhere on a shared
// machine falls on both alike. Each iteration makes a batch of calls
// through each, the one going first alternating.
//
// rpc=bufconn makes real calls. rpc=answered answers every call at once
// in an interceptor on the connection (grpc.WithUnaryInterceptor on the
// raw ClientConn and on the pool's connections), so nothing reaches the
// network and pool-raw-ns/call is the pool's own cost per call, which
// inside a real call is lost in the noise.
//
// The metrics are medians over the iterations, so that a burst of load
// that hits one batch moves nothing: each one's time per call, the
// difference (pool-raw-ns/call) and the ratio (pool/raw) of the two
// batches of an iteration; and each one's heap allocations per call, over
// the whole run (the process's allocations, the server's included, which
// are the same for both).
//
//	go test -run '^$' -bench UnaryInterleaved -benchtime 400x -count 20 ./pool/
func BenchmarkUnaryInterleaved(b *testing.B) {
	b.Run("rpc=bufconn", func(b *testing.B) { unaryInterleaved(b) })
	b.Run("rpc=answered", func(b *testing.B) { unaryInterleaved(b, answerAtOnce) })
}

func unaryInterleaved(b *testing.B, dial ...grpc.DialOption) {
	const batch = 50
	clients := rawAndPool(b, dial...)
	for _, c := range clients { // warm: the first calls' set-up done
		for range 100 {
			if _, err := c.Unary(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	}
	allocs := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	heapAllocs := func() uint64 {
		metrics.Read(allocs)
		return allocs[0].Value.Uint64()
	}
	run := func(c echopb.EchoClient) (time.Duration, uint64) {
		ctx := context.Background()
		a0 := heapAllocs()
		start := time.Now()
		for range batch {
			if _, err := c.Unary(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		d := time.Since(start)
		return d, heapAllocs() - a0
	}
	var objs [2]uint64
	var times [2][]time.Duration // of each iteration's batch
	var diffs []time.Duration
	var ratios []float64
	for b.Loop() {
		var d [2]time.Duration
		for _, k := range [2]int{len(ratios) % 2, 1 - len(ratios)%2} {
			var n uint64
			d[k], n = run(clients[k])
			times[k] = append(times[k], d[k])
			objs[k] += n
		}
		diffs = append(diffs, d[1]-d[0])
		ratios = append(ratios, float64(d[1])/float64(d[0]))
	}
	calls := float64(len(ratios) * batch)
	perCall := func(ds []time.Duration) float64 { return float64(median(ds).Nanoseconds()) / batch }
	b.ReportMetric(perCall(times[0]), "raw-ns/call")
	b.ReportMetric(perCall(times[1]), "pool-ns/call")
	b.ReportMetric(perCall(diffs), "pool-raw-ns/call")
	b.ReportMetric(median(ratios), "pool/raw")
	b.ReportMetric(float64(objs[0])/calls, "raw-allocs/call")
	b.ReportMetric(float64(objs[1])/calls, "pool-allocs/call")
	b.ReportMetric(0, "ns/op")
}

// median returns the median of xs, which it sorts.
func median[T cmp.Ordered](xs []T) T {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// answerAtOnce answers every unary call on the connection it is given to
// without sending it.
var answerAtOnce = grpc.WithUnaryInterceptor(func(context.Context, string, any, any, *grpc.ClientConn, grpc.UnaryInvoker, ...grpc.CallOption) error {
	return nil
})

// rawAndPool starts an Echo server on bufconn and returns two clients of
// it: a raw *grpc.ClientConn and a ready pool of size 1, both with dial.
func rawAndPool(tb testing.TB, dial ...grpc.DialOption) [2]echopb.EchoClient {
	lis := bufconn.Listen(1 << 20)
	srv := backend.Start(lis, backend.Options{Name: "bufnet"})
	tb.Cleanup(srv.Stop)
	dial = append(dial, testutil.Insecure, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}))
	raw, err := grpc.NewClient("passthrough:///bufnet", dial...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = raw.Close() })
	r, target := testutil.ManualTarget("bufnet")
	p := testutil.NewPool(tb, target, pool.WithResolvers(r), pool.WithSize(1), pool.WithDialOptions(dial...))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitForReady(ctx); err != nil {
		tb.Fatal(err)
	}
	return [2]echopb.EchoClient{echopb.NewEchoClient(raw), echopb.NewEchoClient(p)}
}
