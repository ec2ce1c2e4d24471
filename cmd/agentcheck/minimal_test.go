package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire/agenttest"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// startMinimal serves a testagent.Minimal on gRPC until the test ends.
func startMinimal(t *testing.T, m testagent.Minimal) string {
	t.Helper()
	p, err := testagent.ListenGRPCPeer("127.0.0.1:0", m.Choose)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p.Endpoint()
}

// rows returns the table rows of out by check name, and their verdicts.
func rows(t *testing.T, out string) map[string]string {
	t.Helper()
	got := make(map[string]string)
	row := regexp.MustCompile(`^(\S+)(?: \(optional\))?\s+(PASS|FAIL|SKIP|WARN)\s`)
	for line := range strings.SplitSeq(out, "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			got[m[1]] = m[2]
		}
	}
	return got
}

// TestMinimalAgentPasses: default flags against an agent that advertises
// little (no limits, no health, five event kinds, no event-id echo) but
// answers correctly: no FAIL, what it did not advertise skipped or
// optional, well within the old 30 s suite budget.
func TestMinimalAgentPasses(t *testing.T) {
	t.Parallel()
	ep := startMinimal(t, testagent.Minimal{})
	start := time.Now()
	code, out, errOut := runBinary(t, ep)
	t.Logf("\n%s%s", out, errOut)
	assert.Less(t, time.Since(start), 10*time.Second)
	require.Equal(t, exitPass, code)
	assert.Empty(t, errOut)
	assert.NotContains(t, out, "FAIL")
	got := rows(t, out)
	want := make(map[string]string)
	for _, name := range agenttest.CheckNames() {
		want[name] = "PASS"
	}
	for _, name := range []string{"decision/header-mutation", "health", "flow-control",
		"frames/malformed", "frames/oversize", "frames/unknown-type"} {
		want[name] = "SKIP"
	}
	assert.Equal(t, want, got)
	for _, name := range []string{"event/configure", "event/websocket_frame", "event/guardrail"} {
		assert.Regexp(t, `(?m)^`+name+` \(optional\)\s+PASS\s+\S+\s+EVENT_TYPE_\w+ is not in supported_events; answered all the same`, out)
	}
	assert.Regexp(t, `(?m)^health\s+SKIP\s+\S+\s+not advertised: capabilities.features.health_reporting is false$`, out)
	assert.Regexp(t, `(?m)^PASS: 16 passed, 0 failed, 6 skipped, 0 optional failed$`, out)
}

// TestAgentAcceptingVersion99Fails: the minimal agent's one real failure
// is the only FAIL.
func TestAgentAcceptingVersion99Fails(t *testing.T) {
	t.Parallel()
	ep := startMinimal(t, testagent.Minimal{AcceptAnyVersion: true})
	code, out, errOut := runBinary(t, ep)
	t.Logf("\n%s%s", out, errOut)
	assert.Equal(t, exitFail, code)
	assert.Equal(t, 1, strings.Count(out, " FAIL "), out)
	assert.Regexp(t, `(?m)^handshake/unsupported-version\s+FAIL\s+\S+\s+agent accepted a handshake offering only version 99`, out)
	assert.Regexp(t, `(?m)^FAIL: 15 passed, 1 failed, 6 skipped, 0 optional failed$`, out)
}

// TestNotAnAgent: where something listens but no agent handshakes, one
// line on stderr, nothing on stdout, exit 3.
func TestNotAnAgent(t *testing.T) {
	t.Parallel()
	web := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(web.Close)
	gs := grpc.NewServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	for _, ep := range []string{"grpc://" + strings.TrimPrefix(web.URL, "http://"), web.URL, "grpc://" + ln.Addr().String()} {
		code, out, errOut := runBinary(t, "-check-timeout", "2s", ep)
		assert.Equal(t, exitNoAgent, code, ep)
		assert.Empty(t, out, ep)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "%s: %q", ep, errOut)
		assert.True(t, strings.HasPrefix(errOut, "agentcheck: no agent at "+ep+": the handshake failed: "), "%q", errOut)
	}
	_, _, errOut := runBinary(t, "grpc://"+ln.Addr().String())
	assert.Contains(t, errOut, "unknown service sentinel.agent.v2.AgentServiceV2 (is -service the agent's gRPC service?)\n")
}

// TestResultsStream: each row is printed as its check ends, not with the
// rest at the end: the handshake's row arrives while the ping check still
// waits for a pong.
func TestResultsStream(t *testing.T) {
	t.Parallel()
	ep := startMinimal(t, testagent.Minimal{IgnorePings: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const stall = 3 * time.Second
	cmd := exec.CommandContext(ctx, binary, "-check-timeout", stall.String(), "-checks", "handshake,ping", ep)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stdout)
	var firstRow time.Time
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "handshake ") {
			firstRow = time.Now()
			assert.Contains(t, lines.Text(), "PASS")
			break
		}
	}
	require.False(t, firstRow.IsZero(), "no handshake row")
	for lines.Scan() {
	}
	var ee *exec.ExitError
	require.ErrorAs(t, cmd.Wait(), &ee)
	assert.Equal(t, exitFail, ee.ExitCode(), "ping is not answered")
	assert.Greater(t, time.Since(firstRow), stall-time.Second, "the handshake row came only at the end")
}

// TestSuiteTimeoutIsIncomplete: checks that -timeout stops are skipped,
// and the run exits 4, not 1.
func TestSuiteTimeoutIsIncomplete(t *testing.T) {
	t.Parallel()
	ep := startMinimal(t, testagent.Minimal{IgnorePings: true})
	code, out, errOut := runBinary(t, "-timeout", "2s", "-check-timeout", "10s", "-checks", "handshake,ping,health", ep)
	assert.Equal(t, exitIncomplete, code, out)
	assert.Regexp(t, `(?m)^ping\s+SKIP\s+\S+\s+not finished: the suite's time ran out$`, out)
	assert.Regexp(t, `(?m)^health\s+SKIP\s+\S+\s+not run: the suite's time ran out$`, out)
	assert.Regexp(t, `(?m)^PASS: 1 passed, 0 failed, 2 skipped`, out)
	assert.Contains(t, errOut, "agentcheck: incomplete: ")
}
