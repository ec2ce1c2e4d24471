package main

import (
	"context"
	"errors"
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

// The services the demo's spans are exported under: the proxy side and
// the agent side, as if each ran in its own process.
const (
	proxyService = "agentwire-quickstart-proxy"
	agentService = "agentwire-quickstart-agent"
)

// tracing is the demo's OpenTelemetry wiring: with OTEL_EXPORTER_OTLP_ENDPOINT
// set (OTLP/gRPC, for example http://127.0.0.1:4317), proxy and agent spans
// go to that collector (Jaeger, for one); otherwise nothing is traced.
type tracing struct {
	tracer    trace.Tracer // the proxy's, for the request spans
	poolOpts  []pool.Option
	agentOpts []agent.Option
	shutdown  []func(context.Context) error
	endpoint  string
}

func setupTracing(ctx context.Context, out io.Writer) (*tracing, error) {
	t := &tracing{tracer: noop.NewTracerProvider().Tracer("")}
	t.endpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	if t.endpoint == "" {
		return t, nil
	}
	proxy, err := t.provider(ctx, proxyService)
	if err != nil {
		return nil, err
	}
	agentTP, err := t.provider(ctx, agentService)
	if err != nil {
		return nil, err
	}
	// One interceptor, one option on each side.
	prop := agentotel.WithPropagator(propagation.TraceContext{})
	pc, err := agentotel.NewInterceptor(agentotel.WithTracerProvider(proxy), prop)
	if err != nil {
		return nil, err
	}
	ac, err := agentotel.NewInterceptor(agentotel.WithTracerProvider(agentTP), prop)
	if err != nil {
		return nil, err
	}
	t.tracer = proxy.Tracer("agentwire/examples/quickstart")
	t.poolOpts = []pool.Option{pool.WithInterceptors(pc)}
	t.agentOpts = []agent.Option{agent.WithInterceptors(ac)}
	fmt.Fprintf(out, "tracing: exporting spans over OTLP to %s (services %q and %q)\n", t.endpoint, proxyService, agentService)
	return t, nil
}

// provider exports the spans of service over OTLP/gRPC; the exporter reads
// OTEL_EXPORTER_OTLP_* itself (endpoint, insecure, headers).
func (t *tracing) provider(ctx context.Context, service string) (*sdktrace.TracerProvider, error) {
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", service))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t.shutdown = append(t.shutdown, tp.Shutdown)
	return tp, nil
}

// done flushes spans and tells the user how to look at them.
func (t *tracing) done(ctx context.Context, out io.Writer) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	if t.endpoint != "" {
		fmt.Fprintf(out, "\ntracing: spans flushed, one trace per request; print the last one with\n"+
			"  go run ./cmd/agentctl trace --last --service %s\n"+
			"(Jaeger's query API: /api/traces?service=%s)\n", proxyService, proxyService)
	}
	return errors.Join(errs...)
}
