package httpguard_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/httpguard"
)

// recordingUpstream records the request bodies it received, even partly.
func recordingUpstream(t *testing.T) (string, func() string) {
	var mu sync.Mutex
	var got bytes.Buffer
	base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got.Write(b)
		mu.Unlock()
		_, _ = w.Write(b)
	}))
	return base, func() string {
		mu.Lock()
		defer mu.Unlock()
		return got.String()
	}
}

// TestBodyStreamsWithBackpressure: chunks reach the upstream only after the
// agent let them through, so a block on a chunk keeps it (and what
// follows) from the upstream.
func TestBodyStreamsWithBackpressure(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	a := &script{body: func(_ context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
		mu.Lock()
		seen = append(seen, string(ev.GetData()))
		mu.Unlock()
		if bytes.Contains(ev.GetData(), []byte("EVIL")) {
			return agent.Block(http.StatusForbidden, "evil\n"), nil
		}
		return agent.Allow(), nil
	}}
	p := newPool(t, map[string]string{"a": startUnix(t, a)})
	g := newGuard(t, p, httpguard.WithChunkSize(4),
		httpguard.WithRoute("/", httpguard.WithAgent("a", httpguard.WithEvents(httpguard.RequestBody))))
	up, got := recordingUpstream(t)
	base := serveProxy(t, g, up)
	c := newClient(t)

	ok := do(t, c, "POST", base+"/", strings.NewReader("abcdefghij"))
	assert.Equal(t, http.StatusOK, ok.status)
	assert.Equal(t, "abcdefghij", ok.body)
	mu.Lock()
	assert.Equal(t, []string{"abcd", "efgh", "ij"}, seen[:3])
	mu.Unlock()

	bad := do(t, c, "POST", base+"/", strings.NewReader("goodEVILtail"))
	assert.Equal(t, http.StatusForbidden, bad.status)
	assert.Equal(t, "evil\n", bad.body)
	assert.NotContains(t, got(), "EVIL")
	assert.NotContains(t, got(), "tail")
}

// TestNeedsMore: an agent that answers needs_more on the headers sees the
// body before next is called, and its block keeps the request from the
// upstream entirely; one that needs more than its limit fails.
func TestNeedsMore(t *testing.T) {
	t.Parallel()
	decideAt := func(marker string) *script {
		return &script{
			headers: func(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
				r := agent.Allow()
				r.NeedsMore = true
				return r, nil
			},
			body: func(_ context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
				if bytes.Contains(ev.GetData(), []byte(marker)) {
					return agent.Block(http.StatusForbidden, "seen\n"), nil
				}
				r := agent.Allow()
				r.NeedsMore = !ev.GetIsLast()
				return r, nil
			},
		}
	}
	p := newPool(t, map[string]string{"a": startUnix(t, decideAt("BAD")), "b": startGRPC(t, decideAt("never"))})
	c := newClient(t)

	t.Run("blocks before next", func(t *testing.T) {
		t.Parallel()
		g := newGuard(t, p, httpguard.WithChunkSize(4),
			httpguard.WithRoute("/", httpguard.WithAgent("a", httpguard.WithEvents(httpguard.RequestBody))))
		up := newUpstream(t)
		res := do(t, c, "POST", serveProxy(t, g, up.URL)+"/", strings.NewReader("aaaabbbbBAD"))
		assert.Equal(t, http.StatusForbidden, res.status)
		assert.Zero(t, up.hits.Load(), "next never ran")
	})
	t.Run("decides at the end", func(t *testing.T) {
		t.Parallel()
		g := newGuard(t, p, httpguard.WithChunkSize(4),
			httpguard.WithRoute("/", httpguard.WithAgent("b", httpguard.WithEvents(httpguard.RequestBody))))
		up := newUpstream(t)
		res := do(t, c, "POST", serveProxy(t, g, up.URL)+"/", strings.NewReader("aaaabbbbcc"))
		assert.Equal(t, http.StatusOK, res.status)
		assert.Equal(t, "aaaabbbbcc", res.body)
	})
	for _, tc := range []struct {
		name   string
		mode   httpguard.AgentOption
		status int
	}{{"over the limit fails closed", httpguard.FailClosed(503), http.StatusRequestEntityTooLarge},
		{"over the limit fails open", httpguard.FailOpen(), http.StatusOK}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGuard(t, p, httpguard.WithChunkSize(4), httpguard.WithRoute("/", httpguard.WithAgent("b",
				httpguard.WithEvents(httpguard.RequestBody), httpguard.WithMaxBodyBytes(8), tc.mode)))
			up := newUpstream(t)
			body := strings.Repeat("z", 40)
			res := do(t, c, "POST", serveProxy(t, g, up.URL)+"/", strings.NewReader(body))
			assert.Equal(t, tc.status, res.status)
			if tc.status == http.StatusOK {
				assert.Equal(t, body, res.body)
			}
		})
	}
}

// TestResponseBody: a block on the first response chunk replaces the
// response; one after the response started cuts it, so the client sees it
// fail rather than end as if complete.
func TestResponseBody(t *testing.T) {
	t.Parallel()
	blockOn := func(marker string) *script {
		return &script{rspBody: func(_ context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
			if bytes.Contains(ev.GetData(), []byte(marker)) {
				return agent.Block(http.StatusForbidden, "leak\n"), nil
			}
			return agent.Allow(), nil
		}}
	}
	p := newPool(t, map[string]string{"first": startUnix(t, blockOn("one")), "late": startUnix(t, blockOn("two")),
		"none": startUnix(t, blockOn("nothing"))})
	up := newUpstream(t)
	c := newClient(t)
	for _, tc := range []struct {
		agent  string
		status int
		body   string
		cut    bool
	}{{"first", http.StatusForbidden, "leak\n", false}, {"late", http.StatusOK, "one", true}, {"none", http.StatusOK, "onetwo", false}} {
		t.Run(tc.agent, func(t *testing.T) {
			t.Parallel()
			g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent(tc.agent,
				httpguard.WithEvents(httpguard.ResponseHeaders|httpguard.ResponseBody))))
			res := do(t, c, "GET", serveProxy(t, g, up.URL)+"/stream", nil)
			assert.Equal(t, tc.status, res.status)
			assert.Equal(t, tc.body, res.body)
			if tc.cut {
				require.Error(t, res.err, "a late block cuts the response")
			} else {
				require.NoError(t, res.err)
			}
		})
	}
}
