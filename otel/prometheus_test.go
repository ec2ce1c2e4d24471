package otel

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/httpguard"
	"github.com/agentwire/agentwire/pool"
)

// TestPrometheusExposition scrapes the metrics of a guarded request, as a
// Prometheus server would, and checks their names (with unit suffixes),
// types and labels.
func TestPrometheusExposition(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	exp, err := promexporter.New(promexporter.WithRegisterer(reg))
	require.NoError(t, err)
	res := resource.NewSchemaless(attribute.String("service.name", "agentwire-test-proxy"))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })

	ic, err := NewInterceptor(WithMeterProvider(mp), WithoutTracing())
	require.NoError(t, err)
	a := newTestAgent(t, newTestHandler(), agent.WithAgentID("waf"), agent.WithInterceptors(ic))
	p, err := pool.New(pool.WithInterceptors(ic), pool.WithLogger(quiet()), pool.WithConnections(1))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, p.AddAgent(ctx, "waf", a.endpoint()))
	g, err := httpguard.New(p, httpguard.WithLogger(quiet()), httpguard.WithRoute("/", httpguard.WithAgent("waf")))
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	srv := httptest.NewServer(ic.Middleware(g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	}))))
	t.Cleanup(srv.Close)
	for _, path := range []string{"/login", "/block"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		_ = resp.Body.Close()
	}
	require.NoError(t, g.Close(ctx))

	metrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(metrics.Close)
	resp, err := http.Get(metrics.URL)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	text := string(body)

	rpc := []string{`rpc_system="agentwire"`, `rpc_service="sentinel.agent.v2.AgentServiceV2"`, `rpc_method="RequestHeaders"`}
	for _, tc := range []struct {
		name, typ string
		labels    []string
		value     string // "" for any
	}{
		{"rpc_client_call_duration_seconds_count", "histogram",
			append(rpc, `agentwire_agent_id="waf"`, `agentwire_transport="uds"`, `agentwire_outcome="allow"`), "1"},
		{"rpc_client_call_duration_seconds_count", "histogram", append(rpc, `agentwire_outcome="block"`), "1"},
		{"rpc_server_call_duration_seconds_count", "histogram", append(rpc, `agentwire_outcome="block"`), "1"},
		{"agentwire_client_events_total", "counter", []string{`agentwire_event_kind="request_complete"`}, "1"},
		{"agentwire_client_affinity_misses_total", "counter", []string{`agentwire_agent_id="waf"`}, "0"},
		{"agentwire_client_fail_open_total", "counter", []string{`agentwire_agent_id="waf"`}, "0"},
		{"agentwire_client_reconnects_total", "counter", []string{`agentwire_agent_id="waf"`}, "0"},
		{"agentwire_client_connections", "gauge", []string{`agentwire_connection_state="ready"`}, "1"},
		{"agentwire_client_breaker_state", "gauge", []string{`agentwire_breaker_state="closed"`}, "1"},
		{"http_server_request_duration_seconds_count", "histogram",
			[]string{`http_request_method="GET"`, `http_response_status_code="200"`, `url_scheme="http"`}, "1"},
		{"http_server_request_duration_seconds_count", "histogram", []string{`http_response_status_code="403"`}, "1"},
		{"http_server_active_requests", "gauge", []string{`http_request_method="GET"`}, "0"},
		{"target_info", "gauge", []string{`service_name="agentwire-test-proxy"`}, "1"},
	} {
		family := strings.TrimSuffix(tc.name, "_count")
		assert.Contains(t, text, "# TYPE "+family+" "+tc.typ+"\n", "type of %s", family)
		assert.Regexp(t, `# HELP `+family+` \S`, text, "description of %s", family)
		got, ok := promSample(text, tc.name, tc.labels...)
		if assert.True(t, ok, "no %s%v in\n%s", tc.name, tc.labels, text) && tc.value != "" {
			assert.Equal(t, tc.value, got, "%s%v", tc.name, tc.labels)
		}
	}
	assert.NotContains(t, text, "unknown_service")
	assert.NotContains(t, text, "_ratio", "the breaker state is no ratio")
}

// promSample returns the value of the first sample of name carrying labels.
func promSample(text, name string, labels ...string) (string, bool) {
next:
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		set, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(set, l) {
				continue next
			}
		}
		return value, true
	}
	return "", false
}
