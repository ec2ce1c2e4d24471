package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
)

// binary is the agentctl command built for the tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agentctl")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "agentctl")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building agentctl: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// runBinary runs agentctl with args and returns its exit status, stdout
// and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("running agentctl: %v", err)
	return 0, "", ""
}

func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "a.sock")
}

// goAgent is the Go SDK serving a handler on a Unix socket and grpc-go.
type goAgent struct {
	srv            *agent.Server
	unixEP, grpcEP string
	stop           func()
}

func startGoAgent(t *testing.T, h agent.Handler, opts ...agent.Option) *goAgent {
	t.Helper()
	opts = append([]agent.Option{agent.WithAgentID("go-agent"), agent.WithName("test agent"), agent.WithVersion("9.9"),
		agent.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	srv, err := agent.NewServer(h, opts...)
	require.NoError(t, err)
	path := socketPath(t)
	uln, err := srv.ListenUnix(path)
	require.NoError(t, err)
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer(agent.GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	ctx, cancel := context.WithCancel(context.Background())
	udone, gdone := make(chan error, 1), make(chan error, 1)
	go func() { udone <- srv.ServeUnix(ctx, uln) }()
	go func() { gdone <- gs.Serve(tln) }()
	var once sync.Once
	a := &goAgent{srv: srv, unixEP: "unix://" + path, grpcEP: "grpc://" + tln.Addr().String()}
	a.stop = func() {
		once.Do(func() {
			cancel()
			srv.Close()
			gs.Stop()
			assert.NoError(t, <-udone)
			assert.NoError(t, <-gdone)
		})
	}
	t.Cleanup(a.stop)
	return a
}

func TestProbe(t *testing.T) {
	t.Parallel()
	a := startGoAgent(t, &waf.Handler{})
	for _, ep := range []string{a.unixEP, a.grpcEP} {
		code, out, errOut := runBinary(t, "probe", ep)
		t.Logf("\n%s%s", out, errOut)
		require.Equal(t, 0, code, errOut)
		assert.Regexp(t, `(?m)^endpoint\s+`+ep+`$`, out)
		assert.Regexp(t, `(?m)^agent\s+go-agent  name test agent  version 9.9$`, out)
		assert.Regexp(t, `(?m)^protocol\s+2$`, out)
		assert.Regexp(t, `(?m)^events\s+request_headers request_body_chunk `, out)
		assert.Regexp(t, `(?m)^features\s+echoes-event-id cancellation flow-control health-reporting`, out)
		assert.Regexp(t, `(?m)^limits\s+max_concurrency=256`, out)
		assert.Regexp(t, `(?m)^health\s+HEALTHY in_flight=0 .*, reported \S+ after the handshake$`, out)
		assert.Regexp(t, `(?m)^ping\s+rtt \S+$`, out)
	}
}

func TestProbeJSON(t *testing.T) {
	t.Parallel()
	a := startGoAgent(t, &waf.Handler{})
	code, out, errOut := runBinary(t, "probe", a.unixEP, "-json")
	require.Equal(t, 0, code, errOut)
	var got struct {
		Endpoint     string `json:"endpoint"`
		Capabilities struct {
			AgentID         string `json:"agent_id"`
			ProtocolVersion int    `json:"protocol_version"`
		} `json:"capabilities"`
		Health struct {
			State string `json:"state"`
		} `json:"health"`
		HealthAfterMS *float64 `json:"health_after_ms"`
		PingRTTMS     *float64 `json:"ping_rtt_ms"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	assert.Equal(t, a.unixEP, got.Endpoint)
	assert.Equal(t, "go-agent", got.Capabilities.AgentID)
	assert.Equal(t, 2, got.Capabilities.ProtocolVersion)
	assert.Equal(t, "HEALTH_STATE_HEALTHY", got.Health.State)
	require.NotNil(t, got.HealthAfterMS)
	require.NotNil(t, got.PingRTTMS)
	assert.Positive(t, *got.PingRTTMS)
}

func TestSend(t *testing.T) {
	t.Parallel()
	a := startGoAgent(t, &waf.Handler{})
	cases := []struct {
		name string
		args []string
		want []string // regexps over stdout
	}{
		{"block", []string{"-method", "POST", "-uri", "/admin/users", "-body", "x=1"}, []string{
			`(?m)^POST /admin/users  \(correlation id agentctl-[0-9a-f]+\)$`,
			`(?m)^request_headers\n  decision  BLOCK 403\n  body      "forbidden\\n"\n  audit     tags admin-blocked; rules admin-1\n  latency   \S+ms$`,
			`(?m)^request_body_chunk\n  decision  not sent: the request was already decided$`,
		}},
		{"allow with mutation and body", []string{"-uri", "/shop", "-body", "<script>alert(1)</script>", "-correlation-id", "c-1"}, []string{
			`(?m)^GET /shop  \(correlation id c-1\)$`,
			`(?m)^request_headers\n  decision\s+ALLOW\n  request header\s+set x-waf: pass\n`,
			`(?m)^request_body_chunk\n  decision\s+BLOCK 403\n(.*\n)*  audit\s+tags xss; rules xss-1\n`,
		}},
		{"headers", []string{"-uri", "/", "-H", "User-Agent: somebot/1.0", "-H", "x-a: b"}, []string{
			`(?m)^  decision\s+CHALLENGE captcha\n  param\s+reason=automated client$`,
		}},
		{"redirect", []string{"-uri", "/old-login"}, []string{`(?m)^  decision\s+REDIRECT 301 /login$`}},
	}
	for _, ep := range []string{a.unixEP, a.grpcEP} {
		for _, tc := range cases {
			code, out, errOut := runBinary(t, append([]string{"send", ep}, tc.args...)...)
			require.Equal(t, 0, code, "%s on %s: %s%s", tc.name, ep, out, errOut)
			for _, re := range tc.want {
				assert.Regexp(t, re, out, "%s on %s", tc.name, ep)
			}
		}
	}
}

func TestSendJSON(t *testing.T) {
	t.Parallel()
	a := startGoAgent(t, &waf.Handler{})
	code, out, errOut := runBinary(t, "send", a.grpcEP, "-json", "-uri", "/x", "-body", "hello", "-correlation-id", "j-1")
	require.Equal(t, 0, code, errOut)
	var got struct {
		Endpoint      string `json:"endpoint"`
		CorrelationID string `json:"correlation_id"`
		Events        []struct {
			Event     string          `json:"event"`
			LatencyMS float64         `json:"latency_ms"`
			Response  json.RawMessage `json:"response"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	assert.Equal(t, "j-1", got.CorrelationID)
	require.Len(t, got.Events, 2)
	assert.Equal(t, "request_headers", got.Events[0].Event)
	assert.JSONEq(t, `{"correlation_id":"j-1","allow":{},"request_headers":[{"set":{"name":"x-waf","value":"pass"}}]}`, string(got.Events[0].Response))
	assert.Equal(t, "request_body_chunk", got.Events[1].Event)
	assert.JSONEq(t, `{"correlation_id":"j-1","allow":{}}`, string(got.Events[1].Response))
}

// failing answers request headers with a handler error.
type failing struct{ agent.Base }

func (failing) RequestHeaders(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	return nil, errors.New("rule store offline")
}

func TestSendAgentError(t *testing.T) {
	t.Parallel()
	a := startGoAgent(t, failing{})
	code, out, errOut := runBinary(t, "send", a.unixEP, "-uri", "/")
	assert.Equal(t, 1, code)
	assert.Regexp(t, `(?m)^  agent error\s+unknown: rule store offline$`, out)
	assert.Contains(t, errOut, "agentctl: "+a.unixEP+": the agent did not decide every event")
}

// metered reports metrics at every health interval.
type metered struct{ agent.Base }

func (metered) Metrics(context.Context) *agentv2.MetricsReport {
	return &agentv2.MetricsReport{
		AgentId:  "go-agent",
		Counters: []*agentv2.CounterMetric{{Name: "rules_hit", Labels: map[string]string{"rule": "r1"}, Value: 7}},
		Gauges:   []*agentv2.GaugeMetric{{Name: "cache_size", Value: 12.5}},
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	a := startGoAgent(t, metered{})
	code, out, errOut := runBinary(t, "watch", a.unixEP, "-for", "1s", "-interval", "200ms")
	require.Equal(t, 0, code, errOut)
	t.Logf("\n%s", out)
	assert.Regexp(t, `(?m)^watching `+a.unixEP+` \(agent go-agent\), Ctrl-C to stop$`, out)
	assert.Regexp(t, `(?m)^\d\d:\d\d:\d\d\.\d{3}  health   go-agent HEALTHY in_flight=0 `, out)
	assert.Regexp(t, `(?m)^\d\d:\d\d:\d\d\.\d{3}  metrics  go-agent rules_hit\{rule=r1\}=7 cache_size=12.5$`, out)
	health := strings.Count(out, "  health   ")
	assert.GreaterOrEqual(t, health, 3, "1 s at 200 ms should bring several reports")
	assert.Regexp(t, fmt.Sprintf(`(?m)^%d health reports, \d+ metrics reports$`, health), out)
}

func TestWatchJSON(t *testing.T) {
	t.Parallel()
	a := startGoAgent(t, metered{})
	code, out, errOut := runBinary(t, "watch", a.grpcEP, "-for", "700ms", "-interval", "200ms", "-json")
	require.Equal(t, 0, code, errOut)
	var health, metrics int
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var line struct {
			Time    time.Time `json:"time"`
			Health  *struct{ State string }
			Metrics *struct {
				AgentID string `json:"agent_id"`
			}
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		assert.False(t, line.Time.IsZero())
		switch {
		case line.Health != nil:
			health++
			assert.Equal(t, "HEALTH_STATE_HEALTHY", line.Health.State)
		case line.Metrics != nil:
			metrics++
			assert.Equal(t, "go-agent", line.Metrics.AgentID)
		default:
			t.Errorf("line with neither health nor metrics: %s", sc.Text())
		}
	}
	assert.GreaterOrEqual(t, health, 2)
	assert.GreaterOrEqual(t, metrics, 2)
}

func TestWatchConnectionLost(t *testing.T) {
	t.Parallel()
	a := startGoAgent(t, agent.Base{})
	cmd := exec.Command(binary, "watch", a.unixEP, "-for", "30s", "-interval", "100ms")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stdout)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.Contains(sc.Text(), "  health   ") {
			a.stop() // the agent goes away mid-watch
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 1, ee.ExitCode())
	assert.Contains(t, stderr.String(), "agentctl: connection to "+a.unixEP+" lost: ")
	assert.Regexp(t, `^\d+ health reports, 0 metrics reports$`, lines[len(lines)-1])
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	ep := "unix://" + socketPath(t)
	for _, cmd := range []string{"probe", "send", "watch"} {
		code, out, errOut := runBinary(t, cmd, ep)
		assert.Equal(t, exitUnreachable, code, cmd)
		assert.Empty(t, out, cmd)
		assert.Contains(t, errOut, "agentctl: cannot reach "+ep+": no such socket", cmd)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	code, _, errOut := runBinary(t, "probe", "grpc://"+addr, "-timeout", "2s")
	assert.Equal(t, exitUnreachable, code)
	assert.Contains(t, errOut, "agentctl: cannot reach grpc://"+addr+": ")
	assert.Contains(t, errOut, "connection refused")
	assert.NotContains(t, errOut, "rpc error", "gRPC's wrapping is not repeated")
	assert.NotContains(t, errOut, "unavailable:", "no code prefixes")
}

// rejectingAgent answers every handshake with success=false.
func rejectingAgent(t *testing.T) string {
	t.Helper()
	path := socketPath(t)
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			var m agentv2.ProxyToAgent
			if err := codec.NewReader(nc, 0).ReadProxyToAgent(&m); err == nil {
				msg := "this agent speaks protocol version 3 only"
				_ = codec.WriteFrameTo(nc, &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{
					Handshake: &agentv2.HandshakeResponse{ProtocolVersion: 3, Error: &msg},
				}}, 0)
			}
			_ = nc.Close()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return "unix://" + path
}

func TestIncompatible(t *testing.T) {
	t.Parallel()
	ep := rejectingAgent(t)
	code, _, errOut := runBinary(t, "probe", ep)
	assert.Equal(t, exitIncompatible, code)
	assert.Contains(t, errOut, "agentctl: incompatible agent at "+ep+": ")
	assert.Contains(t, errOut, "this agent speaks protocol version 3 only")

	a := startGoAgent(t, agent.Base{})
	code, _, errOut = runBinary(t, "probe", a.grpcEP, "-service", "zentinel.agent.v2.AgentServiceV2")
	assert.Equal(t, exitIncompatible, code)
	assert.Contains(t, errOut, "agentctl: incompatible agent at "+a.grpcEP+": ")
	assert.Contains(t, errOut, "unknown service zentinel.agent.v2.AgentServiceV2")
	assert.Contains(t, errOut, "try -service")
}

func TestUsage(t *testing.T) {
	t.Parallel()
	code, _, errOut := runBinary(t)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "usage: agentctl COMMAND ENDPOINT [flags]")

	code, _, errOut = runBinary(t, "frobnicate", "unix:///x")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `agentctl: unknown command "frobnicate"`)

	code, _, errOut = runBinary(t, "send", "unix:///x", "unix:///y")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "want exactly one ENDPOINT, got 2 arguments")

	code, _, errOut = runBinary(t, "send", "unix:///x", "-H", "no-colon")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `header "no-colon": want 'name: value'`)

	code, _, errOut = runBinary(t, "probe", "ftp://x")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `unknown scheme "ftp"`)

	code, out, _ := runBinary(t, "help")
	assert.Equal(t, 0, code)
	for _, c := range []string{"probe", "send", "watch"} {
		assert.Contains(t, out, "  "+c+" ")
	}
	for _, c := range []string{"probe", "send", "watch"} {
		code, out, errOut := runBinary(t, c, "-h")
		assert.Equal(t, 0, code, c)
		assert.Empty(t, errOut, c)
		assert.Contains(t, out, "usage: agentctl "+c+" ENDPOINT", c)
		assert.Contains(t, out, "-cacert", c)
	}
}
