package pool_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

func BenchmarkUnaryMetrics(b *testing.B) {
	bs := testutil.StartBackends(b, 1)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	plain, _ := testutil.ReadyPool(b, bs, pool.WithSize(1))
	withM, _ := testutil.ReadyPool(b, bs, pool.WithSize(1), pool.WithMeterProvider(mp))
	for _, tc := range []struct {
		name string
		p    *pool.Pool
	}{{"metrics=none", plain}, {"metrics=sdk", withM}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			c := echopb.NewEchoClient(tc.p)
			ctx := context.Background()
			for b.Loop() {
				if _, err := c.Unary(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
