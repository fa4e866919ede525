package pool

import (
	"log/slog"

	"go.opentelemetry.io/otel/metric"

	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// Options for what the pool reports: logs and metrics.

// WithLogger sets where the pool logs adds, removals, recycles, drains,
// breaker changes and growth (debug and info levels). Default: nothing is
// logged. A nil logger makes New fail.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) {
		if l == nil || l.Handler() == nil {
			o.fail("WithLogger: nil logger, or one without a handler")
			return
		}
		o.logger = l
	})
}

// DefaultMetricsBackendLimit is how many backends get their own
// grpcpool.backend attribute value when WithMetricsBackendLimit is not
// given.
const DefaultMetricsBackendLimit = telemetry.DefaultBackendLimit

// WithMeterProvider sets where the pool records its OpenTelemetry metrics
// (the instruments are listed in docs/operations.md). Default: the global
// provider, otel.GetMeterProvider(), so nothing is recorded until the
// application installs one with otel.SetMeterProvider; install it before
// the pool carries calls. A noop.MeterProvider turns metrics off at
// almost no cost. A nil provider makes New fail.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(o *options) {
		if isNil(mp) {
			o.fail("WithMeterProvider: nil provider")
			return
		}
		o.meterProvider = mp
	})
}

// WithMetricsBackendLimit bounds the cardinality of the grpcpool.backend
// attribute: the first n backends the pool knows at a time are labelled
// with their address, further ones share the value "other" until a
// labelled backend is removed. Default 100 (DefaultMetricsBackendLimit);
// 0 puts every backend under "other". Negative values make New fail.
func WithMetricsBackendLimit(n int) Option {
	return optionFunc(func(o *options) {
		if n < 0 {
			o.fail("WithMetricsBackendLimit(%d): must not be negative", n)
			return
		}
		o.metricsBackendLimit = &n
	})
}

// recorder makes the metrics Recorder of a pool of target from the
// options.
func (o *options) recorder(target string) (*telemetry.Recorder, error) {
	limit := DefaultMetricsBackendLimit
	if o.metricsBackendLimit != nil {
		limit = *o.metricsBackendLimit
	}
	return telemetry.New(o.meterProvider, target, limit)
}
