package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	agentotel "github.com/agentwire/agentwire/otel"
	"github.com/agentwire/agentwire/pool"
)

// metricsSetup exposes the pool's OpenTelemetry metrics (events, durations,
// in-flight, connections by state, flow control, breaker, the agents' own
// reports) in Prometheus format, through the OTel Prometheus exporter: no
// hand-formatted text.
type metricsSetup struct {
	observer *agentotel.Observer
	provider *sdkmetric.MeterProvider
	registry *prometheus.Registry
}

func newMetrics() (*metricsSetup, error) {
	reg := prometheus.NewRegistry()
	exp, err := promexporter.New(promexporter.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	obs, err := agentotel.NewObserver(agentotel.WithMeterProvider(mp), agentotel.WithoutTracing())
	if err != nil {
		return nil, err
	}
	return &metricsSetup{observer: obs, provider: mp, registry: reg}, nil
}

// poolOptions wires the observer into a pool.
func (m *metricsSetup) poolOptions() []pool.Option {
	return []pool.Option{pool.WithObserver(m.observer)}
}

// serve runs the /metrics endpoint on ln until ctx ends.
func (m *metricsSetup) serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	_ = m.provider.Shutdown(sctx)
	return err
}
