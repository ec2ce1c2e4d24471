package agenttest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// startMinimal serves a testagent.Minimal on gRPC or a Unix socket until
// the test ends and returns its endpoint.
func startMinimal(t *testing.T, m testagent.Minimal, framed bool) string {
	t.Helper()
	var p *testagent.Peer
	var err error
	if framed {
		p, err = testagent.ListenFramedPeer(socketPath(t), m.Choose)
	} else {
		p, err = testagent.ListenGRPCPeer("127.0.0.1:0", m.Choose)
	}
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p.Endpoint()
}

// minimalSuiteBudget is agentcheck's former default suite budget, which
// the minimal agent used to exhaust; a run against it must stay well under.
const minimalSuiteBudget = 30 * time.Second

// TestRunAgainstMinimalAgent: an agent that advertises little but answers
// correctly passes; what it did not advertise is skipped or optional.
func TestRunAgainstMinimalAgent(t *testing.T) {
	t.Parallel()
	for _, framed := range []bool{false, true} {
		name := map[bool]string{false: "grpc", true: "unix"}[framed]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ep := startMinimal(t, testagent.Minimal{}, framed)
			var streamed []Result
			start := time.Now()
			results, err := Run(context.Background(), ep, WithResultHandler(func(r Result) { streamed = append(streamed, r) }))
			took := time.Since(start)
			require.NoError(t, err)
			requireAllPass(t, results)
			assert.Equal(t, results, streamed, "every result is handed over as its check ends, in order")
			assert.Less(t, took, minimalSuiteBudget/3)
			assert.Zero(t, Summarize(results).Failed)
			assert.Zero(t, Summarize(results).Warned)

			require.Len(t, results, len(CheckNames()))
			got := byName(results)
			for _, name := range CheckNames() {
				r := got[name]
				switch name {
				case "event/configure", "event/websocket_frame", "event/guardrail":
					assert.True(t, r.Passed && r.Optional, "%s: not advertised, answered anyway: %+v", name, r)
					assert.Contains(t, r.Detail, "is not in supported_events; answered all the same: allow")
				case "health":
					assert.True(t, r.Skipped, "%+v", r)
					assert.Equal(t, "not advertised: capabilities.features.health_reporting is false", r.Detail)
				case "flow-control":
					assert.True(t, r.Skipped, "%+v", r)
					assert.Equal(t, "not advertised: capabilities.features.flow_control is false", r.Detail)
				case "decision/header-mutation":
					assert.True(t, r.Skipped, "%+v", r)
					assert.Contains(t, r.Detail, "no mutation header configured")
				case "frames/malformed", "frames/oversize", "frames/unknown-type":
					assert.Equal(t, framed, r.Passed, "%s: %+v", name, r)
					assert.Equal(t, !framed, r.Skipped, "%s: %+v", name, r)
				default:
					assert.True(t, r.Passed && !r.Optional, "%s: %+v", name, r)
				}
			}
		})
	}
}

// TestRunAgainstAgentIgnoringUnlistedEvents: an agent that never answers
// the kinds it did not list gets a warning for each after a short wait, and
// the other checks keep their budgets.
func TestRunAgainstAgentIgnoringUnlistedEvents(t *testing.T) {
	t.Parallel()
	ep := startMinimal(t, testagent.Minimal{IgnoreUnlisted: true}, false)
	start := time.Now()
	results, err := Run(context.Background(), ep)
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 3*probeTimeout+5*time.Second)
	requireAllPass(t, results)
	got := byName(results)
	for _, name := range []string{"event/configure", "event/websocket_frame", "event/guardrail"} {
		r := got[name]
		assert.Equal(t, "WARN", r.Status(), "%s: %+v", name, r)
		assert.Contains(t, r.Detail, "is not in supported_events; docs/protocol.md §6 still asks for an answer: ")
		assert.Less(t, r.Duration, probeTimeout+time.Second, name)
	}
	assert.Equal(t, Summary{Passed: 13, Skipped: 6, Warned: 3}, Summarize(results))
}

// TestRunAgainstAgentAcceptingVersion99: the one real failure of the
// minimal agent the issue found is the only failure reported.
func TestRunAgainstAgentAcceptingVersion99(t *testing.T) {
	t.Parallel()
	ep := startMinimal(t, testagent.Minimal{AcceptAnyVersion: true}, false)
	results, err := Run(context.Background(), ep)
	require.NoError(t, err)
	var failed []string
	for _, r := range results {
		if r.Failed() {
			failed = append(failed, r.Name)
		}
	}
	assert.Equal(t, []string{"handshake/unsupported-version"}, failed)
	assert.Contains(t, byName(results)["handshake/unsupported-version"].Detail,
		"agent accepted a handshake offering only version 99")
	assert.False(t, Passed(results))
}

// TestRunStopsWithoutHandshake: where something listens but no agent
// handshake completes, Run returns ErrNoAgent and no results at all.
func TestRunStopsWithoutHandshake(t *testing.T) {
	t.Parallel()
	web := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(web.Close)
	gs := grpc.NewServer() // a gRPC server without the agent service
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = gs.Serve(gln) }()
	t.Cleanup(gs.Stop)
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	require.NoError(t, err)
	t.Cleanup(func() { _ = silent.Close() })

	for _, ep := range []string{
		"grpc://" + strings.TrimPrefix(web.URL, "http://"),
		web.URL,
		"grpc://" + gln.Addr().String(),
		"grpc://" + silent.Addr().String(),
	} {
		t.Run(ep, func(t *testing.T) {
			called := false
			start := time.Now()
			results, err := Run(context.Background(), ep, WithCheckTimeout(time.Second),
				WithResultHandler(func(Result) { called = true }))
			require.ErrorIs(t, err, ErrNoAgent)
			assert.NotEqual(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err))
			assert.Contains(t, err.Error(), "no agent at "+ep+": ")
			assert.Nil(t, results)
			assert.False(t, called)
			assert.Less(t, time.Since(start), 5*time.Second)
		})
	}
}
