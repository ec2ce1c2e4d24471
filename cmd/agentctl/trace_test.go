package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/events"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	"github.com/agentwire/agentwire/internal/jaegertest"
	agentotel "github.com/agentwire/agentwire/otel"
	"github.com/agentwire/agentwire/pool"
)

// exporting returns a tracer provider exporting spans of service svc to
// Jaeger at otlp (OTLP gRPC); flush exports them and shuts it down.
func exporting(t *testing.T, otlp, svc string) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(otlp), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", svc))))
}

// TestTraceWaterfall sends a blocked request through a traced pool and a
// traced agent exporting to a real Jaeger, then prints its trace with
// agentctl trace, by id and with --last.
func TestTraceWaterfall(t *testing.T) {
	t.Parallel()
	j := jaegertest.Start(t, jaegertest.Binary(t))
	proxyTP := exporting(t, j.OTLP, "agentctl-test-proxy")
	agentTP := exporting(t, j.OTLP, "agentctl-test-agent")
	prop := agentotel.WithPropagator(propagation.TraceContext{})
	ac, err := agentotel.NewInterceptor(agentotel.WithTracerProvider(agentTP), agentotel.WithoutMetrics(), prop)
	require.NoError(t, err)
	a := startGoAgent(t, &waf.Handler{}, agent.WithInterceptors(ac))
	pc, err := agentotel.NewInterceptor(agentotel.WithTracerProvider(proxyTP), agentotel.WithoutMetrics(), prop)
	require.NoError(t, err)
	p, err := pool.New(pool.WithInterceptors(pc), pool.WithConnections(1))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, p.AddAgent(ctx, "waf", a.unixEP))

	rctx, root := proxyTP.Tracer("test").Start(ctx, "GET /admin", trace.WithSpanKind(trace.SpanKindServer))
	resp, err := p.Send(rctx, "waf", events.RequestHeaders(httptest.NewRequest(http.MethodGet, "/admin", nil), "t1"))
	require.NoError(t, err)
	require.Equal(t, uint32(403), resp.GetBlock().GetStatus())
	_, err = p.Send(rctx, "waf", events.RequestComplete("t1", events.Completion{Status: 403}))
	require.NoError(t, err)
	root.End()
	require.NoError(t, p.Close())
	a.stop()
	require.NoError(t, proxyTP.Shutdown(ctx))
	require.NoError(t, agentTP.Shutdown(ctx))
	id := root.SpanContext().TraceID().String()

	var out string
	require.Eventually(t, func() bool {
		code, o, _ := runBinary(t, "trace", "-jaeger", j.Query, id)
		out = o
		return code == 0 && strings.Contains(o, ": 5 spans, 2 services")
	}, 30*time.Second, 200*time.Millisecond, "trace %s with 5 spans in Jaeger; last output:\n%s", id, out)
	t.Logf("\n%s", out)
	for _, want := range []string{
		`(?m)^trace ` + id + `: 5 spans, 2 services, \S+ms$`,
		`(?m)^SERVICE\s+SPAN\s+START\s+DURATION\s+DECISION\s+TIMELINE$`,
		`(?m)^agentctl-test-proxy\s+GET /admin\s+\+0\.000ms\s+\S+ms\s+-\s+\|=+\|$`,
		`(?m)^agentctl-test-proxy\s+RequestHeaders → waf\s+\+\S+ms\s+\S+ms\s+block 403\s+\|`,
		`(?m)^agentctl-test-agent\s+RequestHeaders\s+\+\S+ms\s+\S+ms\s+block 403\s+\|`,
		`(?m)^agentctl-test-proxy\s+RequestComplete → waf\s+\+\S+ms\s+\S+ms\s+allow\s+\|`,
		`(?m)^agentctl-test-agent\s+RequestComplete\s+\+\S+ms\s+\S+ms\s+allow\s+\|`,
	} {
		assert.Regexp(t, want, out)
	}
	// Children are indented under their parent: the proxy's event spans
	// under the request span, the agent's under the proxy's headers span
	// (only request headers carry trace context on the wire).
	indent := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		if m := regexp.MustCompile(`^agentctl-test-\w+( +)(\S.*?) {2}`).FindStringSubmatch(l); m != nil {
			indent[m[2]] = len(m[1])
		}
	}
	assert.Equal(t, indent["GET /admin"]+2, indent["RequestHeaders → waf"], "%v", indent)
	assert.Equal(t, indent["GET /admin"]+2, indent["RequestComplete → waf"], "%v", indent)
	assert.Equal(t, indent["GET /admin"]+4, indent["RequestHeaders"], "%v", indent)
	assert.Equal(t, indent["GET /admin"]+4, indent["RequestComplete"], "%v", indent)

	code, last, errOut := runBinary(t, "trace", "-jaeger", j.Query, "--last", "-service", "agentctl-test-proxy")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, last, "trace "+id+": 5 spans")
	code, last, errOut = runBinary(t, "trace", "--last", "-jaeger", j.Query)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, last, "trace "+id+": 5 spans")

	code, _, errOut = runBinary(t, "trace", "-jaeger", j.Query, "0123456789abcdef0123456789abcdef")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, "not found")
}

func TestTraceUsage(t *testing.T) {
	t.Parallel()
	code, _, errOut := runBinary(t, "trace")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "give one TRACE-ID or --last")
	code, _, _ = runBinary(t, "trace", "--last", "abc")
	assert.Equal(t, exitUsage, code)
	code, _, errOut = runBinary(t, "trace", "-jaeger", "http://127.0.0.1:1", "abc")
	assert.Equal(t, exitUnreachable, code)
	assert.Contains(t, errOut, "cannot reach Jaeger")
}
