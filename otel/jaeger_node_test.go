package otel

import (
	"bufio"
	"context"
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
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire/pool"
)

// nodeAgentProc is the example Node agent (examples/node-agent) running as a
// subprocess on a Unix socket.
type nodeAgentProc struct {
	sock string
	// stop sends SIGTERM (SIGKILL after 10 s) and returns how the process
	// exited; later calls return the first result.
	stop func() error
}

// startNodeAgent runs `node examples/node-agent/agent.mjs --uds PATH` with
// the extra environment env (every inherited OTEL_* variable dropped) until
// the test ends. It fails, never skips, when Node or the npm packages are
// missing: the Jaeger test only runs where scripts/setup has run.
func startNodeAgent(t *testing.T, env ...string) *nodeAgentProc {
	t.Helper()
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node not found on PATH (Node.js 20 or later is needed)")
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	for _, pkg := range []string{"@bufbuild/protobuf", "@opentelemetry/sdk-trace-base", "@opentelemetry/exporter-trace-otlp-proto"} {
		_, err := os.Stat(filepath.Join(root, "node_modules", pkg, "package.json"))
		require.NoError(t, err, "npm package %s is missing: run scripts/setup (npm ci) first", pkg)
	}
	dir, err := os.MkdirTemp("", "aw") // t.TempDir() can be too long for a socket path
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "node.sock")
	logPath := filepath.Join(t.TempDir(), "node-agent.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)

	cmd := exec.Command(node, filepath.Join(root, "examples/node-agent/agent.mjs"), "--uds", sock)
	cmd.Dir = root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	// The reader owns the pipe until EOF, which comes when the process exits.
	first := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s := bufio.NewScanner(out)
		if s.Scan() {
			first <- s.Text()
		}
		close(first)
		for s.Scan() {
		}
	}()
	var (
		once    sync.Once
		exitErr error
	)
	stop := func() error {
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
			t.Logf("node agent log:\n%s", log)
		}
	})

	select {
	case line, ok := <-first:
		require.True(t, ok, "node agent exited without a ready line")
		require.Equal(t, "ready uds="+sock, line, "node agent's ready line")
	case <-time.After(15 * time.Second):
		t.Fatal("node agent printed no ready line within 15 s")
	}
	return &nodeAgentProc{sock: sock, stop: stop}
}

// TestJaegerNodeAgent runs a real Jaeger, a pool exporting the proxy's spans
// over OTLP gRPC and the example Node agent exporting its own over OTLP
// HTTP, and checks through the query API that one trace holds both, the
// Node agent's span a child of the proxy's client span. The Node agent's
// batch delay is a minute, so its span reaches Jaeger only through the
// flush on SIGTERM.
func TestJaegerNodeAgent(t *testing.T) {
	t.Parallel()
	bin := jaegerBinary(t)
	j := startJaeger(t, bin)
	assertLoopbackOnly(t, j.pid)

	const proxySvc, nodeSvc = "agentwire-proxy", "agentwire-node-agent"
	const nodeOp = "agent.request_headers"
	na := startNodeAgent(t,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+j.otlpHTTP,
		"OTEL_BSP_SCHEDULE_DELAY=60000",
	)

	proxyTP := newExportingProvider(t, j, proxySvc)
	pc, err := NewInterceptor(WithTracerProvider(proxyTP), WithoutMetrics(), WithPropagator(propagation.TraceContext{}))
	require.NoError(t, err)
	p, err := pool.New(pool.WithInterceptors(pc), pool.WithLogger(quiet()), pool.WithConnections(1))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, p.AddAgent(ctx, "node", "unix://"+na.sock))

	rctx, root := proxyTP.Tracer("test").Start(ctx, "GET /login", trace.WithSpanKind(trace.SpanKindServer))
	resp, err := p.Send(rctx, "node", headers("n1", "/login"))
	require.NoError(t, err)
	require.NotNil(t, resp.GetAllow(), "the Node agent allows /login: %v", resp)
	agentTraceparent := resp.GetAudit().GetCustom()["traceparent"]
	_, err = p.Send(rctx, "node", bodyChunk("n1"))
	require.NoError(t, err)
	_, err = p.Send(rctx, "node", complete("n1"))
	require.NoError(t, err)
	root.End()
	require.NoError(t, proxyTP.ForceFlush(ctx))
	traceID := root.SpanContext().TraceID().String()

	// The agent's audit names its span: 00-<trace id>-<span id>-<flags>.
	tp := strings.Split(agentTraceparent, "-")
	require.Len(t, tp, 4, "traceparent %q in the Node agent's audit", agentTraceparent)
	assert.Equal(t, traceID, tp[1], "the Node agent's span continues the proxy's trace")
	nodeSpanID := tp[2]

	require.NoError(t, p.Close())
	require.NoError(t, na.stop(), "node agent exits cleanly on SIGTERM after exporting its spans")

	var tr *jaegerTrace
	require.Eventually(t, func() bool {
		for _, x := range j.traces(t, nodeSvc) {
			if !sameID(x.TraceID, traceID) {
				continue
			}
			if _, _, ok := x.span(proxySvc, service+"/RequestHeaders", nil); ok {
				tr = &x
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "trace %s with spans of %s and %s not in Jaeger", traceID, proxySvc, nodeSvc)

	kind := func(want string) func(string, any) bool {
		return func(k string, v any) bool { return k == "span.kind" && v == want }
	}
	rootID, _, ok := tr.span(proxySvc, "GET /login", nil)
	require.True(t, ok, "proxy root span")
	ph, phParent, ok := tr.span(proxySvc, service+"/RequestHeaders", kind("client"))
	require.True(t, ok, "proxy RequestHeaders client span")
	assert.True(t, sameID(phParent, rootID), "proxy event span is a child of the proxy's request span")
	nh, nhParent, ok := tr.span(nodeSvc, nodeOp, kind("server"))
	require.True(t, ok, "Node agent %s server span of service %s", nodeOp, nodeSvc)
	assert.True(t, sameID(nhParent, ph), "Node agent span %s is a CHILD_OF proxy span %s (parent %s)", nh, ph, nhParent)
	assert.True(t, sameID(nh, nodeSpanID), "Jaeger's Node span %s is the one the agent reported (%s)", nh, nodeSpanID)
	_, _, ok = tr.span(nodeSvc, nodeOp, func(k string, v any) bool {
		return k == "agentwire.correlation_id" && v == "n1"
	})
	assert.True(t, ok, "Node agent span tagged with the correlation id")
	services := map[string]bool{}
	for _, pr := range tr.Processes {
		services[pr.ServiceName] = true
	}
	assert.Equal(t, map[string]bool{proxySvc: true, nodeSvc: true}, services, "services in the trace")
	t.Logf("Jaeger trace %s: %d spans from %s and %s; Node agent span %s is a child of proxy span %s",
		traceID, len(tr.Spans), proxySvc, nodeSvc, nh, ph)
}
