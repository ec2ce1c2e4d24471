package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/agentwire/agentwire/agent"
	agentotel "github.com/agentwire/agentwire/otel"
)

// serviceName names the agent's spans unless OTEL_SERVICE_NAME (or
// OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const serviceName = "agentwire-waf-agent"

// setupTracing exports the agent's spans over OTLP/gRPC when
// OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is
// set, for example http://127.0.0.1:4317; the exporter reads the other
// OTEL_EXPORTER_OTLP_* variables itself. It returns the agent option and
// a flush for shutdown; both do nothing without an endpoint.
func setupTracing(ctx context.Context, logger *slog.Logger) ([]agent.Option, func(context.Context) error, error) {
	endpoint := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if endpoint == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("otlp exporter: %w", err)
	}
	res, err := resource.Merge(resource.NewSchemaless(attribute.String("service.name", serviceName)), resource.Environment())
	if err != nil {
		return nil, nil, fmt.Errorf("resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	ic, err := agentotel.NewInterceptor(agentotel.WithTracerProvider(tp), agentotel.WithoutMetrics(),
		agentotel.WithPropagator(propagation.TraceContext{}))
	if err != nil {
		return nil, nil, err
	}
	logger.Info("tracing: exporting spans over OTLP/gRPC", "endpoint", endpoint, "service", serviceName)
	return []agent.Option{agent.WithInterceptors(ic)}, tp.Shutdown, nil
}
