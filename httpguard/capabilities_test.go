package httpguard_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/httpguard"
)

// TestEventsFollowCapabilities: an agent gets only the events it declared
// in its handshake, whatever the route asks for it, and the chain's
// decision combines as before; an agent that declares no event types (an
// older one) gets everything the route asks for.
func TestEventsFollowCapabilities(t *testing.T) {
	t.Parallel()
	var rspHdrs atomic.Int64
	hdrs := &script{
		headers: func(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
			return agent.AllowSetRequestHeader("X-Checked", "hdrs"), nil
		},
		rspHdrs: func(context.Context, *agentv2.ResponseHeadersEvent) (*agentv2.AgentResponse, error) {
			rspHdrs.Add(1)
			return agent.Allow(), nil
		},
	}
	body := &script{body: func(_ context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
		if bytes.Contains(ev.GetData(), []byte("EVIL")) {
			return agent.Block(http.StatusForbidden, "evil\n"), nil
		}
		return agent.Allow(), nil
	}}
	var oldChunks atomic.Int64
	old := &peer{decide: func(_ context.Context, ev *agentv2.ProxyToAgent) *agentv2.AgentResponse {
		if ev.GetRequestBodyChunk() != nil {
			oldChunks.Add(1)
		}
		return nil
	}}
	p := newPool(t, map[string]string{
		"hdrs": startUnix(t, hdrs, agent.WithSupportedEvents(agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS)),
		"body": startUnix(t, body),
		"old":  startPeer(t, old),
	})
	all := httpguard.WithEvents(httpguard.RequestHeaders | httpguard.RequestBody | httpguard.ResponseHeaders |
		httpguard.ResponseBody | httpguard.RequestComplete)
	g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("hdrs", all),
		httpguard.WithAgent("body", httpguard.WithEvents(httpguard.RequestBody)), httpguard.WithAgent("old", all)))
	base := serve(t, g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			return // blocked: the guard answers
		}
		w.Header().Set("Got-Checked", r.Header.Get("X-Checked"))
		_, _ = w.Write([]byte("ok"))
	})))
	c := newClient(t)

	res := do(t, c, "POST", base+"/", strings.NewReader("hello"))
	assert.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, "hdrs", res.header.Get("Got-Checked"), "the headers agent's mutation applies")
	res = do(t, c, "POST", base+"/", strings.NewReader("some EVIL"))
	assert.Equal(t, http.StatusForbidden, res.status, "the body agent's block wins")
	assert.Equal(t, "evil\n", res.body)

	hdrs.mu.Lock()
	assert.Len(t, hdrs.seen, 2)
	assert.Zero(t, hdrs.chunks, "no body events for an agent that did not declare them")
	assert.Empty(t, hdrs.complete, "nor request_complete")
	hdrs.mu.Unlock()
	assert.Zero(t, rspHdrs.Load(), "nor response headers")
	body.mu.Lock()
	assert.Equal(t, 2, body.chunks)
	body.mu.Unlock()
	assert.Positive(t, oldChunks.Load(), "an agent that declares nothing gets what the route asks")
}
