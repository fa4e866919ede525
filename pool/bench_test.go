package pool_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/keepalive"
	"github.com/grpcpool/grpcpool/pool"
)

// The benchmarks compare the pool with a raw *grpc.ClientConn to the same
// loopback server in the same run; read them as ratios:
//
//	go test -run '^$' -bench . -benchmem -count 6 ./pool/ | tee bench.txt
//	benchstat -col /via bench.txt

// bothWays runs body through a raw *grpc.ClientConn, through a pool with
// default options, and through a pool that knows the server's stream limit
// (so it does not watch NewStream to learn it), all to the same loopback
// server.
func bothWays(b *testing.B, body func(b *testing.B, c echopb.EchoClient)) {
	bs := testutil.StartBackends(b, 1)
	raw, err := grpc.NewClient("passthrough:///"+bs[0].Addr(), testutil.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = raw.Close() })
	p, _ := testutil.ReadyPool(b, bs, pool.WithSize(1))
	known, _ := testutil.ReadyPool(b, bs, pool.WithSize(1), pool.WithMaxStreamsPerConn(1000))
	for _, tc := range []struct {
		name string
		cc   grpc.ClientConnInterface
	}{{"via=raw", raw}, {"via=pool", p}, {"via=pool-limit-set", known}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			body(b, echopb.NewEchoClient(tc.cc))
		})
	}
}

var req = &echopb.EchoRequest{Message: "x"}

func BenchmarkUnary(b *testing.B) {
	bothWays(b, func(b *testing.B, c echopb.EchoClient) {
		ctx := context.Background()
		for b.Loop() {
			if _, err := c.Unary(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUnaryParallel(b *testing.B) {
	bothWays(b, func(b *testing.B, c echopb.EchoClient) {
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

// BenchmarkUnaryPolicy is one unary call per op over 3 loopback backends,
// through grpc-go's round_robin and through a pool with each policy: what a
// policy costs per call (the pick, and PeakEWMA's latency bookkeeping)
// beside the call itself. Run it interleaved, as the figures in
// docs/policies.md were:
//
//	go test -run '^$' -bench UnaryPolicy -benchmem -count 6 ./pool/
func BenchmarkUnaryPolicy(b *testing.B) {
	bs := testutil.StartBackends(b, 3)
	r, target := testutil.ManualTarget(testutil.AddrsOf(bs)...)
	raw, err := grpc.NewClient(target, testutil.Insecure, grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = raw.Close() })
	ccs := []grpc.ClientConnInterface{raw}
	names := []string{"via=round_robin"}
	for _, pol := range []pool.Policy{pool.RoundRobin, pool.LeastActive, pool.PeakEWMA} {
		p, _ := testutil.ReadyPool(b, bs, pool.WithSize(1), pool.WithPolicy(pol))
		ccs = append(ccs, p)
		names = append(names, "via=pool-"+pol.String())
	}
	for i, cc := range ccs {
		b.Run(names[i], func(b *testing.B) {
			b.ReportAllocs()
			c := echopb.NewEchoClient(cc)
			ctx := context.Background()
			for b.Loop() {
				if _, err := c.Unary(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStreamSetup opens a Bidi stream, makes one round trip and ends
// it.
func BenchmarkStreamSetup(b *testing.B) {
	bothWays(b, func(b *testing.B, c echopb.EchoClient) {
		ctx := context.Background()
		for b.Loop() {
			s, err := c.Bidi(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Send(req); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				b.Fatal(err)
			}
			_ = s.CloseSend()
			if _, err := s.Recv(); err != io.EOF {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkConnCost measures what each connection costs in goroutines and
// live heap, the pool's on top of grpc.ClientConn's: 50 loopback backends
// (with the health service, and keepalive enforcement that allows the
// pings), reached by a pool WithSize(2) (100 connections) and, in the same
// iteration, by 100 raw grpc.ClientConns (two per backend, with the same
// keepalive dial option when the pool has one). Both counts include the
// server side of each connection, in this process, which is the same for
// both; so goroutines/conn and B/conn, the differences, are the pool's own
// (its watch loops, health streams, per-connection state), and
// raw-goroutines/conn and raw-B/conn are grpc's. With health checking,
// over-grpc-health-goroutines/conn and over-grpc-health-B/conn compare the
// pool with raw ClientConns running grpc's own client-side health checking
// instead. Heap is live heap after two collections, averaged over the
// iterations:
//
//	go test -run '^$' -bench BenchmarkConnCost -benchtime 3x -count 3 ./pool/
func BenchmarkConnCost(b *testing.B) {
	const backends, size = 50, 2
	ka := keepalive.Config{}
	bs := testutil.StartBackendsWith(b, backends, func(i int) backend.Options {
		return backend.Options{Name: fmt.Sprintf("b%d", i), Health: true, ServerOptions: ka.ServerOptions()}
	})
	addrs := testutil.AddrsOf(bs)
	// Warm up, unmeasured: the first ClientConns of a process pay for
	// grpc's lazy global set-up, which is no connection's cost.
	connCost(b, backends*size, func() (func() bool, func()) { return openRaw(b, addrs, size, []grpc.DialOption{testutil.Insecure}) })
	connCost(b, backends*size, func() (func() bool, func()) {
		return openPool(b, addrs, size, false, []pool.Option{pool.WithSize(size)})
	})
	for _, tc := range []struct {
		name      string
		health    bool
		keepalive bool
		opts      []pool.Option
	}{
		{name: "options=none"},
		{name: "options=health", health: true, opts: []pool.Option{pool.WithHealthCheck("")}},
		{name: "options=keepalive", keepalive: true, opts: []pool.Option{pool.WithKeepalive(ka)}},
		{name: "options=breaker", opts: []pool.Option{pool.WithBreaker(breaker.Settings{})}},
		{name: "options=all", health: true, keepalive: true, opts: []pool.Option{
			pool.WithHealthCheck(""), pool.WithKeepalive(ka), pool.WithBreaker(breaker.Settings{}),
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var rawG, rawH, poolG, poolH, hcG, hcH float64
			for b.Loop() {
				dial := []grpc.DialOption{testutil.Insecure}
				if tc.keepalive {
					dial = append(dial, ka.DialOption())
				}
				g, h := connCost(b, backends*size, func() (func() bool, func()) { return openRaw(b, addrs, size, dial) })
				rawG, rawH = rawG+g, rawH+h
				if tc.health {
					// grpc's own client-side health checking, for comparison.
					g, h = connCost(b, backends*size, func() (func() bool, func()) {
						return openRaw(b, addrs, size, append(dial, grpc.WithDefaultServiceConfig(grpcHealthConfig)))
					})
					hcG, hcH = hcG+g, hcH+h
				}
				g, h = connCost(b, backends*size, func() (func() bool, func()) {
					return openPool(b, addrs, size, tc.health, append([]pool.Option{pool.WithSize(size)}, tc.opts...))
				})
				poolG, poolH = poolG+g, poolH+h
			}
			n := float64(b.N)
			b.ReportMetric((poolG-rawG)/n, "goroutines/conn")
			b.ReportMetric((poolH-rawH)/n, "B/conn")
			b.ReportMetric(rawG/n, "raw-goroutines/conn")
			b.ReportMetric(rawH/n, "raw-B/conn")
			if tc.health {
				b.ReportMetric((poolG-hcG)/n, "over-grpc-health-goroutines/conn")
				b.ReportMetric((poolH-hcH)/n, "over-grpc-health-B/conn")
			}
		})
	}
}

// grpcHealthConfig turns on grpc's client-side health checking of the
// whole server (service ""), which needs a petiole policy: round_robin over
// the one address.
const grpcHealthConfig = `{"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}`

// openRaw dials perAddr raw ClientConns to each of addrs and returns a
// check that all are READY and a function closing them.
func openRaw(b *testing.B, addrs []string, perAddr int, dial []grpc.DialOption) (ready func() bool, closeAll func()) {
	var ccs []*grpc.ClientConn
	for _, a := range addrs {
		for range perAddr {
			cc, err := grpc.NewClient("passthrough:///"+a, dial...)
			if err != nil {
				b.Fatal(err)
			}
			cc.Connect()
			ccs = append(ccs, cc)
		}
	}
	ready = func() bool {
		for _, cc := range ccs {
			if cc.GetState() != connectivity.Ready {
				return false
			}
		}
		return true
	}
	closeAll = func() {
		for _, cc := range ccs {
			_ = cc.Close()
		}
	}
	return ready, closeAll
}

// openPool makes a pool over addrs and returns a check that every backend
// has size ready connections (healthy ones, with health) and none
// connecting, and a function closing it.
func openPool(b *testing.B, addrs []string, size int, health bool, opts []pool.Option) (ready func() bool, closeAll func()) {
	r, target := testutil.ManualTarget(addrs...)
	p, err := pool.New(target, append([]pool.Option{pool.WithResolvers(r), pool.WithDialOptions(testutil.Insecure)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	ready = func() bool {
		st := p.Stats()
		if len(st.Backends) != len(addrs) {
			return false
		}
		for _, bk := range st.Backends {
			if bk.Ready != size || bk.Connecting > 0 || (health && !bk.Healthy) {
				return false
			}
		}
		return true
	}
	return ready, func() { _ = p.Close() }
}

// connCost opens conns connections with open, waits until they are ready
// and the goroutine count is steady, and returns the goroutines and live
// heap bytes they added, per connection. It closes them and waits until the
// goroutines they ran have ended, so that the next measurement starts from
// the same count.
func connCost(b *testing.B, conns int, open func() (ready func() bool, closeAll func())) (goroutines, heap float64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g0 := steadyGoroutines(ctx, b)
	h0 := liveHeap()
	ready, closeAll := open()
	for !ready() {
		if ctx.Err() != nil {
			b.Fatalf("%d connections not ready within a minute", conns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	g1 := steadyGoroutines(ctx, b)
	h1 := liveHeap()
	closeAll()
	for runtime.NumGoroutine() > g0 {
		if ctx.Err() != nil {
			b.Fatalf("%d goroutines still running after the connections closed, %d before they opened", runtime.NumGoroutine(), g0)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return float64(g1-g0) / float64(conns), float64(int64(h1)-int64(h0)) / float64(conns)
}

// steadyGoroutines returns the goroutine count once it has not changed for
// ten polls 10 ms apart: connections start their goroutines (transport
// reader, writer, health stream) a moment after they report READY.
func steadyGoroutines(ctx context.Context, b *testing.B) int {
	last, same := runtime.NumGoroutine(), 0
	for same < 10 {
		if ctx.Err() != nil {
			b.Fatalf("goroutine count not steady within a minute: %d", last)
		}
		time.Sleep(10 * time.Millisecond)
		if n := runtime.NumGoroutine(); n == last {
			same++
		} else {
			last, same = n, 0
		}
	}
	return last
}

// liveHeap returns the bytes of live heap objects after two full
// collections (the second empties the sync.Pool victim caches the first
// filled).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
