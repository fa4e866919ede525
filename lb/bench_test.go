package lb_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/lb"
)

// The benchmarks compare a ClientConn whose policy is grpcpool with one
// whose policy is grpc's round_robin, with the same connections (one per
// backend, three loopback backends), in the same run; sub-benchmarks
// alternate with -count, so read them as ratios:
//
//	go test -run '^$' -bench . -benchmem -count 10 -cpu 1,2 ./lb/ | tee bench.txt
//	benchstat -col /via bench.txt

// bothPolicies runs body through each policy, on ClientConns that are
// READY on all three backends first.
func bothPolicies(b *testing.B, body func(b *testing.B, c echopb.EchoClient)) {
	bs := testutil.StartBackends(b, 3)
	for _, tc := range []struct{ name, sc string }{
		{"round_robin", `{"loadBalancingConfig":[{"round_robin":{}}]}`},
		{"grpcpool", lb.ServiceConfig(lb.Config{Size: 1})},
		{"grpcpool-least_active", lb.ServiceConfig(lb.Config{Size: 1, Policy: lb.LeastActive})},
	} {
		r, target := testutil.ManualTarget(testutil.AddrsOf(bs)...)
		cc, err := grpc.NewClient(target, testutil.Insecure, grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(tc.sc))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cc.Close() })
		c := echopb.NewEchoClient(cc)
		// Every backend answers before timing starts.
		seen := map[string]bool{}
		for i := 0; len(seen) < len(bs); i++ {
			if i == 1000 {
				b.Fatalf("%s: after 1000 calls only %v answered", tc.name, seen)
			}
			resp, err := c.Unary(context.Background(), req, grpc.WaitForReady(true))
			if err != nil {
				b.Fatal(err)
			}
			seen[resp.GetBackend()] = true
		}
		b.Run(fmt.Sprint("via=", tc.name), func(b *testing.B) {
			b.ReportAllocs()
			body(b, c)
		})
	}
}

var req = &echopb.EchoRequest{Message: "x"}

func BenchmarkUnary(b *testing.B) {
	bothPolicies(b, func(b *testing.B, c echopb.EchoClient) {
		ctx := context.Background()
		for b.Loop() {
			if _, err := c.Unary(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUnaryParallel(b *testing.B) {
	bothPolicies(b, func(b *testing.B, c echopb.EchoClient) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				if _, err := c.Unary(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkUnaryInterleaved measures the two policies against each other
// in alternating batches within one benchmark, so that load from
// elsewhere on a shared machine falls on both alike: each iteration makes
// a batch of calls (from 8 goroutines) through round_robin and a batch
// through grpcpool, in alternating order, and the metrics are each one's
// time per call and their ratio:
//
//	go test -run '^$' -bench UnaryInterleaved -benchtime 200x -count 5 -cpu 1,2 ./lb/
func BenchmarkUnaryInterleaved(b *testing.B) {
	const batch, workers = 400, 8
	bs := testutil.StartBackends(b, 3)
	ccs := make([]echopb.EchoClient, 2)
	for i, sc := range []string{`{"loadBalancingConfig":[{"round_robin":{}}]}`, lb.ServiceConfig(lb.Config{Size: 1})} {
		r, target := testutil.ManualTarget(testutil.AddrsOf(bs)...)
		cc, err := grpc.NewClient(target, testutil.Insecure, grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(sc))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cc.Close() })
		ccs[i] = echopb.NewEchoClient(cc)
		for range 30 { // warm: every backend connected and called
			if _, err := ccs[i].Unary(context.Background(), req, grpc.WaitForReady(true)); err != nil {
				b.Fatal(err)
			}
		}
	}
	run := func(c echopb.EchoClient) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range batch / workers {
					if _, err := c.Unary(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	var spent [2]time.Duration
	i := 0
	for b.Loop() {
		first := i % 2
		spent[first] += run(ccs[first])
		spent[1-first] += run(ccs[1-first])
		i++
	}
	calls := float64(i * batch)
	b.ReportMetric(float64(spent[0].Nanoseconds())/calls, "rr-ns/call")
	b.ReportMetric(float64(spent[1].Nanoseconds())/calls, "grpcpool-ns/call")
	b.ReportMetric(float64(spent[1])/float64(spent[0]), "grpcpool/rr")
	b.ReportMetric(0, "ns/op")
}
