package otel

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"

	"github.com/agentwire/agentwire/httpguard"
	"github.com/agentwire/agentwire/pool"
)

// startWAFAgent builds and runs the example WAF agent (examples/waf-agent)
// serving gRPC on a free loopback port, with the extra environment env
// (inherited OTEL_* variables dropped), until the test ends. It returns the
// agent's address and a stop that sends SIGTERM and waits for the exit.
func startWAFAgent(t *testing.T, env ...string) (addr string, stop func() error) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "go not found on PATH")
	bin := filepath.Join(t.TempDir(), "waf-agent")
	build := exec.Command(goBin, "build", "-o", bin, "./examples/waf-agent")
	build.Dir = ".."
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building the WAF agent: %s", out)

	logPath := filepath.Join(t.TempDir(), "waf-agent.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin, "-grpc", "127.0.0.1:0", "-id", "waf")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string, 4)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			select {
			case lines <- s.Text():
			default:
			}
		}
		close(lines)
	}()
	var (
		once    sync.Once
		exitErr error
	)
	stop = func() error {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-readDone:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-readDone
			}
			exitErr = cmd.Wait()
			_ = logf.Close()
		})
		return exitErr
	}
	t.Cleanup(func() {
		_ = stop()
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("waf agent log:\n%s", log)
		}
	})
	timeout := time.After(15 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "waf agent exited before it was ready")
			if a, found := strings.CutPrefix(line, "listening grpc "); found {
				addr = a
			}
			if line == "ready" {
				require.NotEmpty(t, addr, "waf agent printed no gRPC address")
				return addr, stop
			}
		case <-timeout:
			t.Fatal("waf agent not ready within 15 s")
		}
	}
}

// TestJaegerGatewayOneTrace sends a request with a body through a guarded
// gateway (the net/http middleware, httpguard, a pool) to two agents in
// processes of their own: the example Node agent on a Unix socket and the
// example WAF agent on gRPC, each exporting its spans to a real Jaeger as
// the gateway does. Jaeger then holds exactly one trace for each service,
// the same one: the request span, a span per event per agent and every
// agent span, parented proxy span to agent span.
func TestJaegerGatewayOneTrace(t *testing.T) {
	t.Parallel()
	bin := jaegerBinary(t)
	j := startJaeger(t, bin)

	const gatewaySvc, wafSvc, nodeSvc = "agentwire-gateway", "agentwire-waf-agent", "agentwire-node-agent"
	na := startNodeAgent(t, "OTEL_EXPORTER_OTLP_ENDPOINT="+j.otlpHTTP, "OTEL_BSP_SCHEDULE_DELAY=100")
	wafAddr, stopWAF := startWAFAgent(t, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+j.otlp, "OTEL_BSP_SCHEDULE_DELAY=100")

	tp := newExportingProvider(t, j, gatewaySvc)
	ic, err := NewInterceptor(WithTracerProvider(tp), WithoutMetrics(), WithPropagator(propagation.TraceContext{}))
	require.NoError(t, err)
	p, err := pool.New(pool.WithInterceptors(ic), pool.WithLogger(quiet()), pool.WithConnections(1))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, p.AddAgent(ctx, "auth", "unix://"+na.sock))
	require.NoError(t, p.AddAgent(ctx, "waf", "grpc://"+wafAddr))
	events := httpguard.WithEvents(httpguard.RequestBody | httpguard.RequestComplete)
	g, err := httpguard.New(p, httpguard.WithLogger(quiet()), httpguard.WithPropagator(propagation.TraceContext{}),
		httpguard.WithRoute("/", httpguard.WithAgent("auth", events), httpguard.WithAgent("waf", events)))
	require.NoError(t, err)
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "welcome\n")
	})
	srv := httptest.NewServer(ic.Middleware(g.Middleware(upstream)))
	t.Cleanup(srv.Close)

	resp, err := http.Post(srv.URL+"/login", "application/x-www-form-urlencoded", strings.NewReader("user=alice&password=x"))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, g.Close(ctx), "request_complete sent")
	require.NoError(t, p.Close())
	require.NoError(t, na.stop(), "node agent flushes its spans on SIGTERM")
	require.NoError(t, stopWAF(), "waf agent flushes its spans on SIGTERM")
	require.NoError(t, tp.ForceFlush(ctx))

	// Every service has one trace, the same one, holding 2 agents x 3
	// events on the gateway, 3 WAF agent spans, 1 Node agent span (it
	// traces request headers only) and the request span: 11 spans.
	var tr *jaegerTrace
	require.Eventually(t, func() bool {
		ts := j.traces(t, gatewaySvc)
		if len(ts) == 1 && len(ts[0].Spans) >= 11 {
			tr = &ts[0]
			return true
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "one trace of 11 spans for %s", gatewaySvc)
	for _, svc := range []string{wafSvc, nodeSvc} {
		ts := j.traces(t, svc)
		require.Len(t, ts, 1, "traces of %s", svc)
		assert.True(t, sameID(ts[0].TraceID, tr.TraceID), "%s's trace is the gateway's", svc)
	}
	assert.Len(t, tr.Spans, 11, "spans in the trace")

	root, rootParent, ok := tr.span(gatewaySvc, "POST", nil)
	require.True(t, ok, "the request span")
	assert.Empty(t, rootParent, "the request span is the root")
	for _, agentID := range []string{"auth", "waf"} {
		isAgent := func(k string, v any) bool { return k == string(AgentIDKey) && v == agentID }
		headersSpan, _, ok := tr.span(gatewaySvc, service+"/RequestHeaders", isAgent)
		require.True(t, ok, "gateway RequestHeaders span for %s", agentID)
		for _, m := range []string{"RequestHeaders", "RequestBodyChunk", "RequestComplete"} {
			_, parent, ok := tr.span(gatewaySvc, service+"/"+m, isAgent)
			if assert.True(t, ok, "gateway %s span for %s", m, agentID) {
				assert.True(t, sameID(parent, root), "gateway %s span for %s is a child of the request span", m, agentID)
			}
			if agentID != "waf" {
				continue
			}
			_, parent, ok = tr.span(wafSvc, service+"/"+m, nil)
			if assert.True(t, ok, "waf agent %s span", m) {
				assert.True(t, sameID(parent, headersSpan), "waf agent %s span is a child of the gateway's headers span", m)
			}
		}
		if agentID == "auth" {
			_, parent, ok := tr.span(nodeSvc, "agent.request_headers", nil)
			if assert.True(t, ok, "node agent span") {
				assert.True(t, sameID(parent, headersSpan), "node agent span is a child of the gateway's headers span")
			}
		}
	}
	t.Logf("Jaeger trace %s: %d spans from %s, %s and %s", tr.TraceID, len(tr.Spans), gatewaySvc, wafSvc, nodeSvc)
}
