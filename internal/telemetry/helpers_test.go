package telemetry_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// newRecorder returns a Recorder on a real SDK provider and the reader
// that collects from it.
func newRecorder(t *testing.T, target string, limit int) (*telemetry.Recorder, *sdkmetric.ManualReader) {
	t.Helper()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { require.NoError(t, mp.Shutdown(context.Background())) })
	r, err := telemetry.New(mp, target, limit)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r, rd
}

// collected is one collection, by instrument name.
type collected map[string]metricdata.Metrics

func collect(t *testing.T, rd *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, rd.Collect(context.Background(), &rm))
	out := collected{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, telemetry.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// key renders an attribute set as "k=v,k=v" in key order.
func key(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// attrs builds the key of the given "k=v" pairs.
func attrs(pairs ...string) string {
	p := slices.Clone(pairs)
	slices.Sort(p)
	return strings.Join(p, ",")
}

// sums returns the points of an int64 sum, by attributes, after checking
// its unit and monotonicity.
func sums(t *testing.T, c collected, name, unit string, monotonic bool) map[string]int64 {
	t.Helper()
	d := data[metricdata.Sum[int64]](t, c, name, unit)
	require.Equal(t, monotonic, d.IsMonotonic, name)
	require.Equal(t, metricdata.CumulativeTemporality, d.Temporality, name)
	return byAttrs(d.DataPoints)
}

// gauges returns the points of an int64 gauge, by attributes.
func gauges(t *testing.T, c collected, name, unit string) map[string]int64 {
	t.Helper()
	return byAttrs(data[metricdata.Gauge[int64]](t, c, name, unit).DataPoints)
}

// data returns the data of the instrument name, after checking its unit
// and its kind.
func data[T any](t *testing.T, c collected, name, unit string) T {
	t.Helper()
	m, ok := c[name]
	require.True(t, ok, "no instrument %s", name)
	require.Equal(t, unit, m.Unit, name)
	d, ok := m.Data.(T)
	require.True(t, ok, "%s: got %T, want %T", name, m.Data, d)
	return d
}

// hpoint is what the tests check of a histogram point.
type hpoint struct {
	Count uint64
	Sum   float64
}

// histograms returns the points of a float64 histogram in seconds, by
// attributes, after checking its unit and buckets.
func histograms(t *testing.T, c collected, name string) map[string]hpoint {
	t.Helper()
	d := data[metricdata.Histogram[float64]](t, c, name, "s")
	out := map[string]hpoint{}
	for _, p := range d.DataPoints {
		require.Equal(t, telemetry.DurationBuckets, p.Bounds, name)
		out[key(p.Attributes)] = hpoint{p.Count, p.Sum}
	}
	return out
}

// byAttrs returns the points' values by attributes.
func byAttrs(points []metricdata.DataPoint[int64]) map[string]int64 {
	out := map[string]int64{}
	for _, p := range points {
		out[key(p.Attributes)] = p.Value
	}
	return out
}
