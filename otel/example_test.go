package otel_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	agentotel "github.com/agentwire/agentwire/otel"
	"github.com/agentwire/agentwire/pool"
)

// Example traces one request from the proxy into an agent over a Unix
// socket. Real programs pass an exporting TracerProvider (for example
// otlptracegrpc to Jaeger) or rely on the OpenTelemetry globals.
func Example() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	opts := []agentotel.Option{agentotel.WithTracerProvider(tp), agentotel.WithoutMetrics(),
		agentotel.WithPropagator(propagation.TraceContext{})}

	// The agent: its handler's context carries the agent span.
	ic, _ := agentotel.NewInterceptor(opts...)
	srv, _ := agent.NewServer(agent.Base{}, agent.WithInterceptors(ic))
	dir, _ := os.MkdirTemp("", "aw")
	defer os.RemoveAll(dir)
	ln, _ := srv.ListenUnix(filepath.Join(dir, "waf.sock"))
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.ServeUnix(context.Background(), ln) }()
	defer func() { srv.Close(); <-served }()

	// The proxy: the same Interceptor traces every event the pool sends.
	p, _ := pool.New(pool.WithInterceptors(ic), pool.WithConnections(1))
	defer p.Close()
	ctx := context.Background()
	if err := p.AddAgent(ctx, "waf", "unix://"+filepath.Join(dir, "waf.sock")); err != nil {
		fmt.Println(err)
		return
	}
	ctx, root := tp.Tracer("proxy").Start(ctx, "GET /")
	_, err := p.Send(ctx, "waf", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{
		RequestHeaders: &agentv2.RequestHeadersEvent{Metadata: &agentv2.RequestMetadata{CorrelationId: "r1"}, Method: "GET", Uri: "/"},
	}})
	root.End()
	if err != nil {
		fmt.Println(err)
		return
	}

	names := map[string]string{}
	var lines []string
	for _, s := range rec.Ended() {
		names[s.SpanContext().SpanID().String()] = s.SpanKind().String() + " " + s.Name()
	}
	for _, s := range rec.Ended() {
		parent := names[s.Parent().SpanID().String()]
		if parent == "" {
			parent = "-"
		}
		lines = append(lines, fmt.Sprintf("%s %s <- %s", s.SpanKind(), s.Name(), parent))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// client sentinel.agent.v2.AgentServiceV2/RequestHeaders <- internal GET /
	// internal GET / <- -
	// server sentinel.agent.v2.AgentServiceV2/RequestHeaders <- client sentinel.agent.v2.AgentServiceV2/RequestHeaders
}
