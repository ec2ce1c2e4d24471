// Package jaegertest runs a real Jaeger all-in-one for end-to-end tests
// of tracing (packages otel and cmd/agentctl): every listener on
// 127.0.0.1, memory storage, the query API.
package jaegertest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

// Jaeger is a running Jaeger all-in-one.
type Jaeger struct {
	Query    string // http://127.0.0.1:port
	OTLP     string // 127.0.0.1:port (OTLP gRPC)
	OTLPHTTP string // http://127.0.0.1:port (OTLP HTTP)
	PID      int
}

// Binary returns the Jaeger binary to test with. Without one the test
// is skipped, except under AGENTWIRE_LONG=1 (CI), where it must run.
func Binary(t testing.TB) string {
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
func freePorts(t testing.TB, n int) []int {
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

// Start runs Jaeger until the test ends, retrying on port races.
func Start(t testing.TB, bin string) *Jaeger {
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

func tryJaeger(t testing.TB, bin string) (*Jaeger, error) {
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
	j := &Jaeger{
		Query:    fmt.Sprintf("http://127.0.0.1:%d", p[0]),
		OTLP:     fmt.Sprintf("127.0.0.1:%d", p[2]),
		OTLPHTTP: fmt.Sprintf("http://127.0.0.1:%d", p[3]),
		PID:      cmd.Process.Pid,
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

func (j *Jaeger) ready() bool {
	resp, err := http.Get(j.Query + "/api/services")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	for _, addr := range []string{j.OTLP, strings.TrimPrefix(j.OTLPHTTP, "http://")} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
	}
	return true
}
