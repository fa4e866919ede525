package telemetry_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc/codes"

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

// BenchmarkHotPathTimed is BenchmarkHotPath with the clock reads a call
// makes to time itself and its attempt: time.Now and time.Since
// (clock=time), or Start and the ...Since methods (clock=stamp), which
// read the monotonic clock only, and only while metrics record:
//
//	go test -run '^$' -bench HotPathTimed -count 6 ./internal/telemetry/ > timed.txt
//	benchstat -col /clock timed.txt
func BenchmarkHotPathTimed(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	global, _ := telemetry.New(nil, "t", 100)
	sdk, _ := telemetry.New(mp, "t", 100)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		r    *telemetry.Recorder
	}{{"global-unset", global}, {"sdk", sdk}} {
		b.Run("provider="+bc.name+"/clock=time", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				call := time.Now()
				attempt := time.Now()
				bc.r.Active(addr1, telemetry.KindUnary, 1)
				bc.r.AttemptDoneIn(ctx, method, codes.OK, addr1, telemetry.LocalityNone, time.Since(attempt))
				bc.r.Active(addr1, telemetry.KindUnary, -1)
				bc.r.CallDone(ctx, method, codes.OK, time.Since(call))
			}
		})
		b.Run("provider="+bc.name+"/clock=stamp", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				call := bc.r.Start(ctx)
				attempt := bc.r.Start(ctx)
				bc.r.Active(addr1, telemetry.KindUnary, 1)
				bc.r.AttemptDoneSince(ctx, method, codes.OK, addr1, telemetry.LocalityNone, attempt)
				bc.r.Active(addr1, telemetry.KindUnary, -1)
				bc.r.CallDoneSince(ctx, method, codes.OK, call)
			}
		})
	}
}
