package pool_test

import (
	"context"
	"io"
	"testing"

	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
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
