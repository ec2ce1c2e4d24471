package caddyagentwire_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// traceAgent allows everything and sends the request's traceparent back
// in a request header, for the upstream to show.
type traceAgent struct{ agent.Base }

func (traceAgent) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	return agent.AllowSetRequestHeader("x-agent-traceparent", ev.GetMetadata().GetTraceparent()), nil
}

// TestTracing puts Caddy's tracing directive before agentwire: the agent
// gets the span of Caddy's server as W3C trace context, the one the
// upstream gets too.
func TestTracing(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	ep := serveAgent(t, traceAgent{})
	up := newUpstream(t, "Traceparent", "X-Agent-Traceparent")
	port := freePort(t)
	mustLoad(t, site(port, "tracing", "agentwire tracer "+ep, "reverse_proxy "+up))
	r := get(t, newClient(t), fmt.Sprintf("http://127.0.0.1:%d/hello", port))
	require.Equal(t, http.StatusOK, r.status)
	lines := strings.Split(strings.TrimSpace(r.body), "\n")
	require.Len(t, lines, 3, r.body)
	upstream, agentSaw := strings.Split(lines[1], "-"), strings.Split(lines[2], "-")
	require.Len(t, upstream, 4, lines[1])
	require.Len(t, agentSaw, 4, "the agent got no traceparent: %q", lines[2])
	assert.Equal(t, upstream[1], agentSaw[1], "the agent's event is in Caddy's trace")
}
