package agenttest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// socketPath returns a fresh Unix socket path short enough for sun_path.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "a.sock")
}

func byName(results []Result) map[string]Result {
	m := make(map[string]Result, len(results))
	for _, r := range results {
		m[r.Name] = r
	}
	return m
}

// requireAllPass fails the test with the table if a required check failed.
func requireAllPass(t *testing.T, results []Result) {
	t.Helper()
	var buf bytes.Buffer
	_ = WriteTable(&buf, results)
	t.Logf("\n%s", buf.String())
	require.True(t, Passed(results), "required checks failed:\n%s", buf.String())
}

func TestRunAgainstConformingFake(t *testing.T) {
	t.Parallel()
	a := startFakeAgent(t, misbehaviour{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	results, err := Run(ctx, a.endpoint(), WithMutationHeader(fakeMutationHeader))
	require.NoError(t, err)
	requireAllPass(t, results)
	require.Len(t, results, len(CheckNames()))
	got := byName(results)
	for _, name := range CheckNames() {
		r := got[name]
		switch name {
		case "flow-control":
			assert.True(t, r.Skipped, "%s: the fake does not advertise flow control: %+v", name, r)
		default:
			assert.True(t, r.Passed, "%s: %+v", name, r)
		}
	}
	assert.Contains(t, got["decision/block"].Detail, "block 403")
	assert.Contains(t, got["decision/header-mutation"].Detail, "res:set:"+fakeMutationHeader)
}

func TestRunDetectsMisbehaviour(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		bad    misbehaviour
		check  string
		detail string
	}{
		{"wrong correlation id", misbehaviour{wrongCorrelation: true}, "event/request_headers", "answered with correlation id"},
		{"wrong correlation id under load", misbehaviour{wrongCorrelation: true}, "concurrency/many-in-flight", "answered with correlation id"},
		{"no pong", misbehaviour{noPong: true}, "ping", "no pong"},
		{"no health", misbehaviour{noHealth: true}, "health", "no health report"},
		{"accepts any version", misbehaviour{anyVersion: true}, "handshake/unsupported-version", "accepted a handshake"},
		{"no agent id", misbehaviour{emptyAgentID: true}, "handshake", "agent_id is empty"},
		{"keeps malformed", misbehaviour{keepMalformed: true}, "frames/malformed", "connection still open"},
		{"waits for oversize payload", misbehaviour{readOversize: true}, "frames/oversize", "connection still open"},
		{"dies on unknown frame", misbehaviour{closeOnUnknown: true}, "frames/unknown-type", "request after a frame of type 0x7e"},
		{"dies on cancel", misbehaviour{closeOnCancel: true}, "cancel", "after cancel"},
		{"never blocks", misbehaviour{allowAll: true}, "decision/block", "want a block"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := startFakeAgent(t, tc.bad)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			results, err := Run(ctx, a.endpoint(), WithChecks(tc.check), WithCheckTimeout(2*time.Second),
				WithLoad(100, 10))
			require.NoError(t, err)
			require.Len(t, results, 1)
			r := results[0]
			assert.Equal(t, tc.check, r.Name)
			assert.True(t, r.Failed(), "%+v", r)
			assert.Contains(t, r.Detail, tc.detail)
			assert.False(t, Passed(results))
		})
	}
}

// TestRunBadCapabilitiesFailOnlyTheHandshake: a handshake that completes
// with wrong capabilities fails the handshake check; the connection works,
// so the other checks run and are judged on their own.
func TestRunBadCapabilitiesFailOnlyTheHandshake(t *testing.T) {
	t.Parallel()
	a := startFakeAgent(t, misbehaviour{emptyAgentID: true})
	results, err := Run(context.Background(), a.endpoint(), WithChecks("handshake", "ping", "handshake/unsupported-version"))
	require.NoError(t, err)
	got := byName(results)
	assert.True(t, got["handshake"].Failed())
	assert.True(t, got["ping"].Passed, "%+v", got["ping"])
	assert.True(t, got["handshake/unsupported-version"].Passed, "%+v", got["handshake/unsupported-version"])
}

func TestRunUnreachable(t *testing.T) {
	t.Parallel()
	_, err := Run(context.Background(), "unix://"+socketPath(t))
	require.ErrorIs(t, err, ErrUnreachable)
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))
	assert.Contains(t, err.Error(), "cannot reach unix://")
}

func TestRunInvalidEndpoint(t *testing.T) {
	t.Parallel()
	for _, ep := range []string{"ftp://x", "unix://", "grpc://", "://"} {
		_, err := Run(context.Background(), ep)
		require.Error(t, err, ep)
		assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err), ep)
	}
}

// TestRunSuiteDeadline: a check that fails within its own budget fails;
// one the suite's deadline cuts short, and those after it, are skipped.
func TestRunSuiteDeadline(t *testing.T) {
	t.Parallel()
	a := startFakeAgent(t, misbehaviour{noPong: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	// cancel fails after its 2 s, waiting for a pong; ping waits for one
	// when the suite ends.
	results, err := Run(ctx, a.endpoint(), WithChecks("cancel", "ping", "health"), WithCheckTimeout(2*time.Second))
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 6*time.Second)
	got := byName(results)
	assert.True(t, got["cancel"].Failed(), "%+v", got["cancel"])
	assert.True(t, got["ping"].Skipped, "%+v", got["ping"])
	assert.Equal(t, "not finished: the suite's time ran out", got["ping"].Detail)
	assert.True(t, got["health"].Skipped, "%+v", got["health"])
	assert.Equal(t, "not run: the suite's time ran out", got["health"].Detail)
	assert.True(t, Passed(results[1:]), "a check that did not run or finish never fails")
}

func TestResultJSONAndTable(t *testing.T) {
	t.Parallel()
	results := []Result{
		{Name: "a", Passed: true, Detail: "fine", Duration: 1500 * time.Microsecond},
		{Name: "b", Detail: "broken\nbadly", Duration: 2 * time.Second},
		{Name: "c", Skipped: true, Detail: "n/a"},
		{Name: "d", Optional: true, Detail: "meh"},
	}
	b, err := json.Marshal(results)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"name":"b","status":"FAIL","passed":false`)
	assert.Contains(t, string(b), `"duration_ms":1.5`)
	var back []Result
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, results, back)

	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, results))
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6, out)
	assert.Regexp(t, `^CHECK\s+RESULT\s+TIME\s+DETAIL$`, lines[0])
	assert.Regexp(t, `^a\s+PASS\s+1.5ms\s+fine$`, lines[1])
	assert.Regexp(t, `^b\s+FAIL\s+2s\s+broken badly$`, lines[2])
	assert.Regexp(t, `^d \(optional\)\s+WARN`, lines[4])
	assert.Equal(t, "FAIL: 1 passed, 1 failed, 1 skipped, 1 optional failed", lines[5])
	assert.False(t, Passed(results))
	assert.True(t, Passed(results[2:]))
}
