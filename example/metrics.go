package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// metricsFlag registers -metrics on fs: the address to serve the pools'
// OpenTelemetry metrics on, in the Prometheus text format at /metrics.
func metricsFlag(fs *flag.FlagSet) *string {
	return fs.String("metrics", "", "serve the pools' metrics for Prometheus at http://`ADDR`/metrics (e.g. 127.0.0.1:9464)")
}

// serveMetrics serves the metrics on addr and installs their provider as
// the global one, which every pool uses by default; with addr empty it
// does nothing. stop shuts the server and the provider down.
func serveMetrics(addr string, stderr io.Writer) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ms, err := startMetrics(addr)
	if err != nil {
		return nil, err
	}
	otel.SetMeterProvider(ms.provider)
	fmt.Fprintf(stderr, "serving metrics at %s\n", ms.url())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ms.close(ctx); err != nil {
			fmt.Fprintln(stderr, "metrics:", err)
		}
	}, nil
}

// metricsServer is an OpenTelemetry SDK provider whose reader is the
// Prometheus exporter, and the HTTP server that exposes it.
type metricsServer struct {
	provider *sdkmetric.MeterProvider
	ln       net.Listener
	srv      *http.Server
	served   chan error // Serve's result
}

// startMetrics listens on addr and serves the provider's metrics at
// /metrics with Prometheus' naming (dots to underscores, unit and _total
// suffixes) on a registry of its own.
func startMetrics(addr string) (*metricsServer, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("metrics: %w", err), provider.Shutdown(context.Background()))
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ms := &metricsServer{
		provider: provider,
		ln:       ln,
		srv:      &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		served:   make(chan error, 1),
	}
	go func() { ms.served <- ms.srv.Serve(ln) }()
	return ms, nil
}

func (m *metricsServer) url() string { return "http://" + m.ln.Addr().String() + "/metrics" }

// close stops the server, waits for it, and shuts the provider down.
func (m *metricsServer) close(ctx context.Context) error {
	err := m.srv.Shutdown(ctx)
	if serr := <-m.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, m.provider.Shutdown(ctx))
}
