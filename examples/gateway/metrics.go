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
	"go.opentelemetry.io/otel/attribute"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	agentotel "github.com/agentwire/agentwire/otel"
	"github.com/agentwire/agentwire/pool"
)

// metricsSetup exposes the pool's OpenTelemetry metrics (events, durations,
// in-flight, connections by state, flow control, breaker, the agents' own
// reports) in Prometheus format, through the OTel Prometheus exporter: no
// hand-formatted text.
type metricsSetup struct {
	ic       *agentotel.Interceptor
	provider *sdkmetric.MeterProvider
	registry *prometheus.Registry
}

func newMetrics() (*metricsSetup, error) {
	reg := prometheus.NewRegistry()
	exp, err := promexporter.New(promexporter.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	// The service name is the gateway's unless OTEL_SERVICE_NAME says otherwise.
	res, err := resource.Merge(resource.NewSchemaless(attribute.String("service.name", "agentwire-gateway")), resource.Environment())
	if err == nil {
		res, err = resource.Merge(resource.Default(), res)
	}
	if err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	ic, err := agentotel.NewInterceptor(agentotel.WithMeterProvider(mp), agentotel.WithoutTracing())
	if err != nil {
		return nil, err
	}
	return &metricsSetup{ic: ic, provider: mp, registry: reg}, nil
}

// serveMetrics serves the pool's and the HTTP server's metrics on ln (nil:
// none) and returns the pool option and the middleware that record them,
// and how to stop.
func serveMetrics(ln net.Listener) ([]pool.Option, func(http.Handler) http.Handler, func(), error) {
	if ln == nil {
		return nil, func(h http.Handler) http.Handler { return h }, func() {}, nil
	}
	m, err := newMetrics()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.serve(ctx, ln) }()
	fmt.Printf("metrics on http://%s/metrics\n", ln.Addr())
	return []pool.Option{pool.WithInterceptors(m.ic)}, m.ic.Middleware, func() { cancel(); <-done }, nil
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
