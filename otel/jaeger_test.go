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
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
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
	"github.com/agentwire/agentwire/pool"
)

// jaegerConfig runs Jaeger's all-in-one pipeline (OTLP gRPC and HTTP in,
// memory storage, query API) with every listener on 127.0.0.1 and its own
// telemetry off: the stock configuration serves the query ports on all
// interfaces.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: mem
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`

// jaeger is a running Jaeger all-in-one.
type jaeger struct {
	query    string // http://127.0.0.1:port
	otlp     string // 127.0.0.1:port (OTLP gRPC)
	otlpHTTP string // http://127.0.0.1:port (OTLP HTTP)
	pid      int
}

// jaegerBinary returns the Jaeger binary to test with. Without one the test
// is skipped, except under AGENTWIRE_LONG=1 (CI), where it must run.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("AGENTWIRE_JAEGER")
	if bin == "" {
		if os.Getenv("AGENTWIRE_LONG") == "1" {
			t.Fatal("AGENTWIRE_LONG=1 but AGENTWIRE_JAEGER is not set; build Jaeger with " +
				"`go build -modfile=jaeger.mod -o bin/jaeger github.com/jaegertracing/jaeger/cmd/jaeger` and set AGENTWIRE_JAEGER=$PWD/bin/jaeger")
		}
		t.Skip("external binary: set AGENTWIRE_JAEGER to a Jaeger binary (`go build -modfile=jaeger.mod -o bin/jaeger " +
			"github.com/jaegertracing/jaeger/cmd/jaeger`) to run the Jaeger end-to-end test; .ci/run does")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("AGENTWIRE_JAEGER=%s: %v", bin, err)
	}
	return bin
}

// freePorts returns n ports free on 127.0.0.1 at the time of the call.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	lns := make([]net.Listener, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns[i] = ln
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// startJaeger runs Jaeger until the test ends, retrying on port races.
func startJaeger(t *testing.T, bin string) *jaeger {
	t.Helper()
	var lastErr error
	for range 3 {
		j, err := tryJaeger(t, bin)
		if err == nil {
			return j
		}
		lastErr = err
	}
	t.Fatalf("starting Jaeger: %v", lastErr)
	return nil
}

func tryJaeger(t *testing.T, bin string) (*jaeger, error) {
	dir := t.TempDir()
	p := freePorts(t, 4)
	cfg := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, p[0], p[1], p[2], p[3]), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "jaeger.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = logf.Close()
	}
	j := &jaeger{
		query:    fmt.Sprintf("http://127.0.0.1:%d", p[0]),
		otlp:     fmt.Sprintf("127.0.0.1:%d", p[2]),
		otlpHTTP: fmt.Sprintf("http://127.0.0.1:%d", p[3]),
		pid:      cmd.Process.Pid,
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			stop()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("jaeger exited: %v\n%s", err, log)
		default:
		}
		if j.ready() {
			break
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("jaeger not ready after 60 s\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("jaeger log:\n%s", log)
		}
	})
	return j, nil
}

func (j *jaeger) ready() bool {
	resp, err := http.Get(j.query + "/api/services")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	for _, addr := range []string{j.otlp, strings.TrimPrefix(j.otlpHTTP, "http://")} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
	}
	return true
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
