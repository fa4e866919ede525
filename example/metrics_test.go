package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// The metrics server exports every instrument with Prometheus' names and
// labels: scraped over loopback and parsed as Prometheus parses it.
func TestMetricsScrape(t *testing.T) {
	ms, err := startMetrics("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, ms.close(ctx))
	})
	r, err := telemetry.New(ms.provider, "dns:///greeter:50051", 1)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })

	ctx := context.Background()
	const a, b, m = "10.0.0.1:50051", "10.0.0.2:50051", "/echo.Echo/Hello"
	r.Active(a, telemetry.KindStream, 1)
	r.AttemptDone(ctx, m, codes.Unavailable, b, 10*time.Millisecond)
	r.RetryAttempt(ctx, m, telemetry.Retry)
	r.AttemptDone(ctx, m, codes.OK, a, 20*time.Millisecond)
	r.CallDone(ctx, m, codes.OK, 30*time.Millisecond)
	r.RetryRefused(ctx, m)
	r.PickWait(ctx, time.Millisecond)
	r.BreakerTransition(b, breaker.StateOpen)
	r.Recycle(a, "max_age")
	r.DrainTimeout(a)
	require.NoError(t, r.RegisterGauges(func(o telemetry.GaugeObserver) {
		o.Connections(a, telemetry.ConnReady, 2)
		o.Connections(b, telemetry.ConnFailing, 1)
		o.StreamLimit(a, 100)
		o.Breaker(a, breaker.StateClosed)
		o.Breaker(b, breaker.StateOpen)
	}))

	fams := scrape(t, ms.url())
	target := map[string]string{"grpcpool_target": "dns:///greeter:50051"}
	with := func(kv ...string) map[string]string {
		l := map[string]string{"grpcpool_target": "dns:///greeter:50051"}
		for i := 0; i < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}
	for _, tc := range []struct {
		family string
		typ    dto.MetricType
		labels map[string]string // of one series that must be there
		value  float64           // its value, or its count for histograms
	}{
		{"grpcpool_client_call_duration_seconds", dto.MetricType_HISTOGRAM, with("grpc_method", "echo.Echo/Hello", "grpc_status", "OK"), 1},
		{"grpcpool_client_attempt_duration_seconds", dto.MetricType_HISTOGRAM, with("grpc_method", "echo.Echo/Hello", "grpc_status", "UNAVAILABLE", "grpcpool_backend", "other"), 1},
		{"grpcpool_client_attempt_duration_seconds", dto.MetricType_HISTOGRAM, with("grpc_method", "echo.Echo/Hello", "grpc_status", "OK", "grpcpool_backend", a), 1},
		{"grpcpool_pick_wait_seconds", dto.MetricType_HISTOGRAM, target, 1},
		{"grpcpool_backend_active", dto.MetricType_GAUGE, with("grpcpool_backend", a, "grpcpool_kind", "stream"), 1},
		{"grpcpool_backend_connections", dto.MetricType_GAUGE, with("grpcpool_backend", a, "grpcpool_connection_state", "ready"), 2},
		{"grpcpool_backend_connections", dto.MetricType_GAUGE, with("grpcpool_backend", "other", "grpcpool_connection_state", "failing"), 1},
		{"grpcpool_backend_stream_limit", dto.MetricType_GAUGE, with("grpcpool_backend", a), 100},
		{"grpcpool_breaker_backends", dto.MetricType_GAUGE, with("grpcpool_backend", "other", "grpcpool_breaker_state", "open"), 1},
		{"grpcpool_breaker_backends", dto.MetricType_GAUGE, with("grpcpool_backend", a, "grpcpool_breaker_state", "open"), 0},
		{"grpcpool_breaker_transitions_total", dto.MetricType_COUNTER, with("grpcpool_backend", "other", "grpcpool_breaker_state", "open"), 1},
		{"grpcpool_retry_attempts_total", dto.MetricType_COUNTER, with("grpc_method", "echo.Echo/Hello", "grpcpool_retry_kind", "retry"), 1},
		{"grpcpool_retry_refused_total", dto.MetricType_COUNTER, with("grpc_method", "echo.Echo/Hello"), 1},
		{"grpcpool_connection_drain_timeouts_total", dto.MetricType_COUNTER, with("grpcpool_backend", a), 1},
		{"grpcpool_connection_recycles_total", dto.MetricType_COUNTER, with("grpcpool_backend", a, "grpcpool_reason", "max_age"), 1},
	} {
		f, ok := fams[tc.family]
		if !assert.True(t, ok, "no family %s", tc.family) {
			continue
		}
		assert.Equal(t, tc.typ, f.GetType(), tc.family)
		got, ok := series(f, tc.labels)
		if assert.True(t, ok, "%s: no series with %v in %v", tc.family, tc.labels, f.GetMetric()) {
			assert.Equal(t, tc.value, got, "%s%v", tc.family, tc.labels)
		}
	}
}

// scrape fetches url and parses the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body bytes.Buffer
	_, err = body.ReadFrom(resp.Body)
	require.NoError(t, err)
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(&body)
	require.NoError(t, err)
	return fams
}

// series returns the value of the series of f whose labels include want
// (a histogram's sample count).
func series(f *dto.MetricFamily, want map[string]string) (float64, bool) {
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if have[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		default:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestServeMetrics(t *testing.T) {
	var errb bytes.Buffer
	stop, err := serveMetrics("", &errb)
	require.NoError(t, err)
	stop()
	assert.Empty(t, errb.String(), "no address, no server")

	_, err = serveMetrics("127.0.0.1:-1", &errb)
	require.Error(t, err, "a bad address is an error")
}

// serveMetrics installs its provider as the global one, so a pool left
// at its default provider is exported.
func TestServeMetricsGlobal(t *testing.T) {
	var errb bytes.Buffer
	stop, err := serveMetrics("127.0.0.1:0", &errb)
	require.NoError(t, err)
	t.Cleanup(stop)
	url, ok := strings.CutPrefix(strings.TrimSpace(errb.String()), "serving metrics at ")
	require.True(t, ok, "stderr: %q", errb.String())

	r, err := telemetry.New(nil, "passthrough:///x", 10)
	require.NoError(t, err)
	r.Recycle("127.0.0.1:1", "idle")
	f, ok := scrape(t, url)["grpcpool_connection_recycles_total"]
	require.True(t, ok, "not exported through the global provider")
	got, ok := series(f, map[string]string{"grpcpool_target": "passthrough:///x", "grpcpool_reason": "idle"})
	require.True(t, ok)
	assert.Equal(t, 1.0, got)
}
