package pool_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/stats/opentelemetry"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// grpcTargets returns, per instrument grpc's OpenTelemetry plugin
// recorded, the grpc.target of each data point.
func grpcTargets(t *testing.T, rd *sdkmetric.ManualReader) map[string][]string {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, rd.Collect(context.Background(), &rm))
	out := make(map[string][]string)
	add := func(name string, set attribute.Set) {
		v, _ := set.Value("grpc.target")
		out[name] = append(out[name], v.AsString())
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					add(m.Name, dp.Attributes)
				}
			case metricdata.Histogram[int64]:
				for _, dp := range d.DataPoints {
					add(m.Name, dp.Attributes)
				}
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					add(m.Name, dp.Attributes)
				}
			}
		}
	}
	return out
}

// canonicalTarget is the grpc.target grpc.NewClient gives target.
func canonicalTarget(t *testing.T, target string, rs ...resolver.Builder) string {
	t.Helper()
	cc, err := grpc.NewClient(target, testutil.Insecure, grpc.WithResolvers(rs...))
	require.NoError(t, err)
	defer cc.Close()
	return cc.CanonicalTarget()
}

// TestGRPCOpenTelemetryPluginSeesThePoolTarget: grpc's own OpenTelemetry
// plugin, passed in WithDialOptions, records every call, attempt and
// subchannel event through the pool with grpc.target the pool's target as
// grpc.NewClient records it, whichever backend took the call.
func TestGRPCOpenTelemetryPluginSeesThePoolTarget(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 3)
	r, manualTarget := testutil.ManualTarget(testutil.AddrsOf(bs)...)
	for _, tc := range []struct {
		name, target string
		opts         []pool.Option
		backends     int
	}{
		{"manual resolver", manualTarget, []pool.Option{pool.WithResolvers(r)}, 3},
		{"no scheme", bs[0].Addr(), nil, 1},
		{"passthrough", "passthrough:///" + bs[1].Addr(), nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
			t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
			plugin := opentelemetry.DialOption(opentelemetry.Options{
				MetricsOptions: opentelemetry.MetricsOptions{
					MeterProvider: mp,
					Metrics:       opentelemetry.DefaultMetrics().Add("grpc.subchannel.connection_attempts_succeeded"),
				},
			})
			opts := append([]pool.Option{pool.WithDialOptions(plugin)}, tc.opts...)
			p := testutil.NewPool(t, tc.target, opts...)
			testutil.WaitFor(t, "every backend ready", func() bool {
				st := p.Stats()
				if len(st.Backends) != tc.backends {
					return false
				}
				for _, b := range st.Backends {
					if b.Ready == 0 {
						return false
					}
				}
				return true
			})
			ctx := testutil.Context(t)
			c := echopb.NewEchoClient(p)
			for range 30 {
				_, err := c.Unary(ctx, &echopb.EchoRequest{Message: "x"})
				require.NoError(t, err)
			}
			for _, b := range p.Stats().Backends {
				if b.Calls == 0 {
					require.Fail(t, fmt.Sprintf("backend %s took no call: %v", b.Addr, p.Stats()))
				}
			}
			// Per call and attempt, grpc records its canonical target; per
			// subchannel, the target as the user wrote it.
			canonical := canonicalTarget(t, tc.target, r)
			got := grpcTargets(t, rd)
			for _, name := range []string{"grpc.client.attempt.started", "grpc.client.attempt.duration", "grpc.client.call.duration", "grpc.subchannel.connection_attempts_succeeded"} {
				require.Falsef(t, len(got[name]) == 0, "no %s data point; recorded: %v", name, got)
			}
			for name, ts := range got {
				want := canonical
				if strings.HasPrefix(name, "grpc.subchannel.") {
					want = tc.target
				}
				for _, tg := range ts {
					assert.EqualValuesf(t, want, tg, "%s: grpc.target = %q, want %q", name, tg, want)
				}
			}
		})
	}
}
