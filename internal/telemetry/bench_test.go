package telemetry_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// BenchmarkHotPath measures what one unary call records (two Active
// changes, one attempt, one call) without a Recorder, on a no-op
// provider, on the global provider with no SDK installed, and on the
// SDK, so the ratio shows in one run.
func BenchmarkHotPath(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	noopRec, _ := telemetry.New(noop.NewMeterProvider(), "t", 100)
	global, _ := telemetry.New(nil, "t", 100)
	sdk, _ := telemetry.New(mp, "t", 100)
	for _, bc := range []struct {
		name string
		r    *telemetry.Recorder
	}{{"nil", nil}, {"noop", noopRec}, {"global-unset", global}, {"sdk", sdk}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				hotPath(bc.r)
			}
		})
	}
	b.Run("sdk-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				hotPath(sdk)
			}
		})
	})
}
