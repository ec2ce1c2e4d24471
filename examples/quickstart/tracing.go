package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/agentwire/agentwire/agent"
	agentotel "github.com/agentwire/agentwire/otel"
	"github.com/agentwire/agentwire/pool"
)

// tracing is the demo's OpenTelemetry wiring: with OTEL_EXPORTER_OTLP_ENDPOINT
// set, proxy and agent spans go to that OTLP collector (Jaeger, for one);
// otherwise nothing is traced.
type tracing struct {
	tracer       trace.Tracer
	poolOpts     []pool.Option
	agentOpts    []agent.Option
	shutdown     func(context.Context) error
	endpoint     string
	traceService string
}

func setupTracing(ctx context.Context, out io.Writer) (*tracing, error) {
	t := &tracing{tracer: noop.NewTracerProvider().Tracer(""), shutdown: func(context.Context) error { return nil }}
	t.endpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	if t.endpoint == "" {
		return t, nil
	}
	// The exporter reads OTEL_EXPORTER_OTLP_* itself (endpoint, insecure, headers).
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	t.traceService = "agentwire-quickstart"
	res := resource.NewSchemaless(attribute.String("service.name", t.traceService))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	opts := []agentotel.Option{agentotel.WithTracerProvider(tp), agentotel.WithPropagator(propagation.TraceContext{})}
	// One interceptor, one option on each side.
	ic, err := agentotel.NewInterceptor(opts...)
	if err != nil {
		return nil, err
	}
	t.tracer = tp.Tracer("agentwire/examples/quickstart")
	t.poolOpts = []pool.Option{pool.WithInterceptors(ic)}
	t.agentOpts = []agent.Option{agent.WithInterceptors(ic)}
	t.shutdown = tp.Shutdown
	fmt.Fprintf(out, "tracing: exporting spans over OTLP to %s (service %q)\n", t.endpoint, t.traceService)
	return t, nil
}

// done flushes spans and tells the user where to look.
func (t *tracing) done(ctx context.Context, out io.Writer) error {
	err := t.shutdown(ctx)
	if t.endpoint != "" {
		fmt.Fprintf(out, "\ntracing: spans flushed; in Jaeger, search service %q (UI on port 16686, API /api/traces?service=%s)\n",
			t.traceService, t.traceService)
	}
	return err
}
