package httpguard_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/httpguard"
)

// TestSlowAgent: an agent slower than its timeout fails the request
// closed with the default or a chosen status, or lets it pass, counted and
// marked in the audit.
func TestSlowAgent(t *testing.T) {
	t.Parallel()
	slow := &peer{decide: func(ctx context.Context, _ *agentv2.ProxyToAgent) *agentv2.AgentResponse {
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
		return nil
	}}
	p := newPool(t, map[string]string{"slow": startPeer(t, slow)})
	timeout := httpguard.WithTimeout(50 * time.Millisecond)
	for _, tc := range []struct {
		name   string
		opt    httpguard.AgentOption
		status int
	}{
		{"default", nil, http.StatusServiceUnavailable},
		{"closed", httpguard.FailClosed(http.StatusBadGateway), http.StatusBadGateway},
		{"open", httpguard.FailOpen(), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []httpguard.AgentOption{timeout}
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("slow", opts...)))
			var failedOpen []string
			base := serve(t, g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				a, _ := httpguard.AuditFrom(r.Context())
				failedOpen = a.FailedOpen
			})))
			res := do(t, newClient(t), "GET", base+"/", nil)
			assert.Equal(t, tc.status, res.status)
			st := g.Stats()[0]
			if tc.status == http.StatusOK {
				assert.Equal(t, []string{"slow"}, failedOpen)
				assert.Equal(t, uint64(1), st.FailedOpen)
			} else {
				assert.Equal(t, uint64(1), st.FailedClosed)
				assert.Equal(t, agentv2.CancelReason_CANCEL_REASON_TIMEOUT, slow.nextCancel(t).GetReason(),
					"the agent is told to drop the request it was too slow for")
			}
		})
	}
}

// TestAgentDiesMidRequest: an agent whose connection ends while it holds a
// request body chunk fails the request closed (the upstream's answer is
// replaced), or open (the upstream gets the whole body).
func TestAgentDiesMidRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opt    httpguard.AgentOption
		status int
	}{
		{"closed", httpguard.FailClosed(http.StatusServiceUnavailable), http.StatusServiceUnavailable},
		{"open", httpguard.FailOpen(), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dying := &peer{die: func(ev *agentv2.ProxyToAgent) bool {
				return ev.EventType() == agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK
			}}
			p := newPool(t, map[string]string{"dying": startPeer(t, dying)})
			g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("dying",
				httpguard.WithEvents(httpguard.RequestBody), tc.opt)))
			up := newUpstream(t)
			body := strings.Repeat("x", 100)
			res := do(t, newClient(t), "POST", serveProxy(t, g, up.URL)+"/upload", strings.NewReader(body))
			assert.Equal(t, tc.status, res.status)
			if tc.status == http.StatusOK {
				assert.Equal(t, body, res.body)
			}
		})
	}
}

// TestClientDisconnectMidBody: a client that goes away while an agent
// inspects its body makes the guard cancel the request at the agent with
// CANCEL_REASON_CLIENT_DISCONNECT.
func TestClientDisconnectMidBody(t *testing.T) {
	t.Parallel()
	inspecting := make(chan struct{}, 1)
	a := &peer{decide: func(ctx context.Context, ev *agentv2.ProxyToAgent) *agentv2.AgentResponse {
		if ch := ev.GetRequestBodyChunk(); ch != nil && ch.GetChunkIndex() == 0 {
			inspecting <- struct{}{}
			// On HTTP/1 the server sees the client gone on its next read.
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
		return nil
	}}
	p := newPool(t, map[string]string{"a": startPeer(t, a)})
	g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("a",
		httpguard.WithEvents(httpguard.RequestBody|httpguard.RequestComplete), httpguard.WithTimeout(10*time.Second))))
	up := newUpstream(t)
	base := serveProxy(t, g, up.URL)

	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/upload", pr)
	require.NoError(t, err)
	done := make(chan error, 1)
	c := newClient(t)
	go func() {
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	_, err = pw.Write([]byte("first part of a body that never ends"))
	require.NoError(t, err)
	select {
	case <-inspecting:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent never got the first chunk")
	}
	cancel() // the client goes away mid-body
	pw.CloseWithError(context.Canceled)
	assert.Error(t, <-done)
	assert.Equal(t, agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT, a.nextCancel(t).GetReason())
}

// TestUpstreamError: an upstream that cannot be reached ends the request at
// the agents with CANCEL_REASON_UPSTREAM_ERROR.
func TestUpstreamError(t *testing.T) {
	t.Parallel()
	a := &peer{}
	p := newPool(t, map[string]string{"a": startPeer(t, a)})
	g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("a")))
	down := newUpstream(t)
	down.Close()
	res := do(t, newClient(t), "GET", serveProxy(t, g, down.URL)+"/", nil)
	assert.Equal(t, http.StatusBadGateway, res.status)
	assert.Equal(t, agentv2.CancelReason_CANCEL_REASON_UPSTREAM_ERROR, a.nextCancel(t).GetReason())
}

// TestEndOfRequest: an agent that asked for request_complete gets it with
// the outcome; one that did not gets a plain cancel.
func TestEndOfRequest(t *testing.T) {
	t.Parallel()
	withComplete := &script{}
	without := &peer{}
	p := newPool(t, map[string]string{"c": startUnix(t, withComplete), "n": startPeer(t, without)})
	g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithUpstream("up-1"), httpguard.WithAgent("c"),
		httpguard.WithAgent("n", httpguard.WithEvents(httpguard.RequestHeaders))))
	up := newUpstream(t)
	res := do(t, newClient(t), "POST", serveProxy(t, g, up.URL)+"/", strings.NewReader("12345"))
	assert.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, agentv2.CancelReason_CANCEL_REASON_UNSPECIFIED, without.nextCancel(t).GetReason())
	require.NoError(t, g.Close(context.Background()), "Close waits for request_complete")
	withComplete.mu.Lock()
	defer withComplete.mu.Unlock()
	require.Len(t, withComplete.complete, 1)
	done := withComplete.complete[0]
	assert.Equal(t, uint32(200), done.GetStatusCode())
	assert.Equal(t, uint64(5), done.GetBytesReceived())
	assert.Equal(t, uint64(5), done.GetBytesSent())
	assert.Equal(t, "up-1", done.GetUpstream())
}
