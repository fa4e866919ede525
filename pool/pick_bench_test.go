package pool

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
)

// fakePool is a pool with n backends of size conns, all READY, and no
// network: for measuring the pick alone.
func fakePool(tb testing.TB, policy Policy, n, size int) *Pool {
	tb.Helper()
	o := defaultOptions()
	o.policy = policy
	p := &Pool{o: o, log: o.logger, backends: map[string]*backend{}}
	for i := range n {
		b := &backend{key: fmt.Sprint("b", i), weight: 1}
		for j := range size {
			c := &conn{b: b, id: uint64(j), ready: make(chan struct{}), drained: make(chan struct{})}
			c.state.Store(int32(connectivity.Ready))
			b.conns = append(b.conns, c)
		}
		p.order = append(p.order, b)
	}
	p.resolved = true
	p.rebuildLocked()
	return p
}

func BenchmarkPick(b *testing.B) {
	for _, policy := range []Policy{RoundRobin, LeastActive, ConsistentHash} {
		b.Run(policy.String(), func(b *testing.B) {
			p := fakePool(b, policy, 6, 2)
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					pk, err := p.pick(ctx, "/m", nil, nil)
					if err != nil {
						b.Error(err)
						return
					}
					pk.c.release()
				}
			})
		})
	}
}

// BenchmarkPickHashKey is the ConsistentHash pick of a call that carries a
// key, read from metadata (WithHashKey; grpc's metadata API copies the
// value: one 16-byte allocation) or given by a function (WithHashKeyFunc).
func BenchmarkPickHashKey(b *testing.B) {
	type ctxKey struct{}
	for _, tc := range []struct {
		name string
		set  func(p *Pool)
		ctx  context.Context
	}{
		{"from=metadata", func(p *Pool) { p.o.hashKey = "x-user-id" },
			metadata.AppendToOutgoingContext(context.Background(), "x-user-id", "user-42")},
		{"from=func", func(p *Pool) {
			p.o.hashKeyFunc = func(ctx context.Context, _ string) (string, bool) {
				k, ok := ctx.Value(ctxKey{}).(string)
				return k, ok
			}
		}, context.WithValue(context.Background(), ctxKey{}, "user-42")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := fakePool(b, ConsistentHash, 6, 2)
			tc.set(p)
			ctx := tc.ctx
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					pk, err := p.pick(ctx, "/m", nil, nil)
					if err != nil {
						b.Error(err)
						return
					}
					pk.c.release()
				}
			})
		})
	}
}
