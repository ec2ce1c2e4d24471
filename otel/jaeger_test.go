package otel

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
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
	"github.com/agentwire/agentwire/internal/jaegertest"
	"github.com/agentwire/agentwire/pool"
)

// jaeger is a running Jaeger all-in-one (package jaegertest).
type jaeger struct {
	query    string // http://127.0.0.1:port
	otlp     string // 127.0.0.1:port (OTLP gRPC)
	otlpHTTP string // http://127.0.0.1:port (OTLP HTTP)
	pid      int
}

func jaegerBinary(t *testing.T) string { return jaegertest.Binary(t) }

func startJaeger(t *testing.T, bin string) *jaeger {
	j := jaegertest.Start(t, bin)
	return &jaeger{query: j.Query, otlp: j.OTLP, otlpHTTP: j.OTLPHTTP, pid: j.PID}
}

// jaegerTrace is a trace as Jaeger's query API returns it.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		TraceID       string `json:"traceID"`
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		ProcessID     string `json:"processID"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

// traces queries /api/traces for a service.
func (j *jaeger) traces(t *testing.T, svc string) []jaegerTrace {
	t.Helper()
	resp, err := http.Get(j.query + "/api/traces?limit=50&lookback=1h&service=" + url.QueryEscape(svc))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body struct {
		Data []jaegerTrace `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return body.Data
}

// sameID compares hex ids, ignoring leading zeros.
func sameID(a, b string) bool { return strings.TrimLeft(a, "0") == strings.TrimLeft(b, "0") }

// span finds a span of service svc named op in tr.
func (tr *jaegerTrace) span(svc, op string, tag func(key string, value any) bool) (spanID, parentID string, ok bool) {
	for _, s := range tr.Spans {
		if s.OperationName != op || tr.Processes[s.ProcessID].ServiceName != svc {
			continue
		}
		if tag != nil {
			found := false
			for _, kv := range s.Tags {
				if tag(kv.Key, kv.Value) {
					found = true
				}
			}
			if !found {
				continue
			}
		}
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" {
				parentID = r.SpanID
			}
		}
		return s.SpanID, parentID, true
	}
	return "", "", false
}

// newExportingProvider exports spans of service svc to Jaeger over OTLP gRPC.
func newExportingProvider(t *testing.T, j *jaeger, svc string) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(j.otlp), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(50*time.Millisecond)),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", svc))),
	)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	})
	return tp
}

// TestJaegerEndToEnd runs a real Jaeger, exports the proxy's spans and a
// real Go agent's spans to it over OTLP, and checks through the query API
// that one trace holds both, the agent's span a child of the proxy's.
func TestJaegerEndToEnd(t *testing.T) {
	bin := jaegerBinary(t)
	j := startJaeger(t, bin)
	assertLoopbackOnly(t, j.pid)

	const proxySvc, agentSvc = "agentwire-proxy", "agentwire-go-agent"
	proxyTP := newExportingProvider(t, j, proxySvc)
	agentTP := newExportingProvider(t, j, agentSvc)
	prop := propagation.TraceContext{}

	ic, err := NewInterceptor(WithTracerProvider(agentTP), WithoutMetrics(), WithPropagator(prop))
	require.NoError(t, err)
	h := newTestHandler()
	a := newTestAgent(t, h, agent.WithAgentID("waf"), agent.WithInterceptors(ic))
	pc, err := NewInterceptor(WithTracerProvider(proxyTP), WithoutMetrics(), WithPropagator(prop))
	require.NoError(t, err)
	p, err := pool.New(pool.WithInterceptors(pc), pool.WithLogger(quiet()), pool.WithConnections(1))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, p.AddAgent(ctx, "waf", a.endpoint()))

	rctx, root := proxyTP.Tracer("test").Start(ctx, "GET /login", trace.WithSpanKind(trace.SpanKindServer))
	for _, ev := range []func() error{
		func() error { _, err := p.Send(rctx, "waf", headers("j1", "/login")); return err },
		func() error { _, err := p.Send(rctx, "waf", bodyChunk("j1")); return err },
		func() error { _, err := p.Send(rctx, "waf", complete("j1")); return err },
	} {
		require.NoError(t, ev())
	}
	root.End()
	require.NoError(t, proxyTP.ForceFlush(ctx))
	require.NoError(t, agentTP.ForceFlush(ctx))
	traceID := root.SpanContext().TraceID().String()

	var tr *jaegerTrace
	require.Eventually(t, func() bool {
		for _, x := range j.traces(t, proxySvc) {
			if sameID(x.TraceID, traceID) && len(x.Spans) >= 7 {
				tr = &x
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "trace %s with 7 spans not in Jaeger", traceID)

	rootID, _, ok := tr.span(proxySvc, "GET /login", nil)
	require.True(t, ok, "proxy root span")
	ph, phParent, ok := tr.span(proxySvc, service+"/RequestHeaders", nil)
	require.True(t, ok, "proxy RequestHeaders span")
	assert.True(t, sameID(phParent, rootID), "proxy event span is a child of the proxy's request span")
	ah, ahParent, ok := tr.span(agentSvc, service+"/RequestHeaders", nil)
	require.True(t, ok, "agent RequestHeaders span")
	assert.True(t, sameID(ahParent, ph), "agent span %s is a child of proxy span %s (parent %s)", ah, ph, ahParent)
	_, abParent, ok := tr.span(agentSvc, service+"/RequestBodyChunk", nil)
	require.True(t, ok, "agent RequestBodyChunk span")
	assert.True(t, sameID(abParent, ph), "later events join under the proxy's headers span")
	_, _, ok = tr.span(proxySvc, service+"/RequestComplete", func(k string, v any) bool {
		return k == string(AgentIDKey) && v == "waf"
	})
	assert.True(t, ok, "proxy RequestComplete span tagged with the agent id")
	t.Logf("Jaeger trace %s: %d spans from %s and %s; agent span %s is a child of proxy span %s",
		traceID, len(tr.Spans), proxySvc, agentSvc, ah, ph)
}

// assertLoopbackOnly checks that every socket process pid listens on is
// bound to a loopback address (Linux: /proc).
func assertLoopbackOnly(t *testing.T, pid int) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Logf("cannot list sockets on %s; not checking Jaeger's listeners", runtime.GOOS)
		return
	}
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	listening := 0
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !inodes[fields[9]] {
				continue
			}
			// TCP listeners are in state 0A; any UDP socket receives.
			if strings.HasPrefix(table, "tcp") && fields[3] != "0A" {
				continue
			}
			listening++
			addr, port, _ := strings.Cut(fields[1], ":")
			pn, _ := strconv.ParseUint(port, 16, 16)
			assert.True(t, loopbackHex(addr), "jaeger listens on %s port %d (%s), not loopback", addr, pn, table)
		}
		_ = f.Close()
	}
	assert.Equal(t, 4, listening, "jaeger listens on query HTTP, query gRPC, OTLP gRPC and OTLP HTTP only")
}

// loopbackHex reports whether a /proc/net address (little-endian words) is
// 127.0.0.0/8 or ::1 (or ::ffff:127.x.x.x).
func loopbackHex(addr string) bool {
	b, err := hex.DecodeString(addr)
	if err != nil {
		return false
	}
	// Each 32-bit word is in host (little-endian) order.
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	ip := net.IP(b)
	return ip.IsLoopback()
}
