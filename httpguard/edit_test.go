package httpguard_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/httpguard"
)

// redactor replaces request body chunks holding "secret" with repl, and
// drops those holding "DROP".
func redactor(repl string) *script {
	return &script{body: func(_ context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
		switch {
		case bytes.Contains(ev.GetData(), []byte("secret")):
			return agent.ReplaceRequestBody(ev, []byte(repl)), nil
		case bytes.Contains(ev.GetData(), []byte("DROP")):
			return agent.ReplaceRequestBody(ev, nil), nil
		}
		return agent.Allow(), nil
	}}
}

// TestRequestBodyMutation: the upstream gets the chunks as the agent left
// them. A change of length is refused while the request declares its
// length — the unmutated chunk never goes upstream — and allowed once the
// agent's headers answer removed Content-Length.
func TestRequestBodyMutation(t *testing.T) {
	t.Parallel()
	same := redactor("[xxxx]") // as long as "secret"
	shorter := redactor("[x]")
	unsized := redactor("[x]")
	unsized.headers = func(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
		r := agent.Allow()
		r.RequestHeaders = append(r.RequestHeaders, agent.RemoveHeader("Content-Length"))
		return r, nil
	}
	p := newPool(t, map[string]string{"same": startUnix(t, same), "shorter": startUnix(t, shorter), "unsized": startUnix(t, unsized)})
	c := newClient(t)
	for _, tc := range []struct {
		agent, body string
		status      int
		upstream    string
	}{
		{"same", "aaaaaasecretbbbbbb", http.StatusOK, "aaaaaa[xxxx]bbbbbb"},
		{"same", "aaaaaaDROPxxbbbbbb", http.StatusServiceUnavailable, ""}, // a drop changes the length too
		{"shorter", "aaaaaasecretbbbbbb", http.StatusServiceUnavailable, "aaaaaa"},
		{"unsized", "aaaaaasecretbbbbbbDROPxx", http.StatusOK, "aaaaaa[x]bbbbbb"},
	} {
		t.Run(tc.agent+"/"+tc.body, func(t *testing.T) {
			t.Parallel()
			g := newGuard(t, p, httpguard.WithChunkSize(6), httpguard.WithRoute("/", httpguard.WithAgent(tc.agent,
				httpguard.WithEvents(httpguard.RequestHeaders|httpguard.RequestBody))))
			up, got := recordingUpstream(t)
			res := do(t, c, "POST", serveProxy(t, g, up)+"/", strings.NewReader(tc.body))
			assert.Equal(t, tc.status, res.status)
			assert.NotContains(t, got(), "secret", "an unmutated chunk never goes upstream")
			assert.NotContains(t, got(), "DROP")
			if tc.status == http.StatusOK {
				assert.Equal(t, tc.upstream, got())
				assert.Equal(t, tc.upstream, res.body)
			}
		})
	}
}

// TestEditMisplaced: an edit the guard cannot tie to what it holds — on
// another event, for another chunk, or a second agent's edit of one chunk
// — fails the agent: closed, the request ends and the chunk goes nowhere;
// open, the request goes on unedited.
func TestEditMisplaced(t *testing.T) {
	t.Parallel()
	onHeaders := &script{headers: func(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
		return agent.ReplaceRequestBody(&agentv2.BodyChunkEvent{}, []byte("x")), nil
	}}
	wrongChunk := &script{body: func(_ context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
		return agent.ReplaceRequestBody(&agentv2.BodyChunkEvent{ChunkIndex: ev.GetChunkIndex() + 1}, []byte("xxxxxx")), nil
	}}
	frameOnBody := &script{body: func(context.Context, *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
		return agent.DropFrame(), nil
	}}
	routeOnBody := &script{body: func(context.Context, *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
		r := agent.Allow()
		r.RoutingMetadata = map[string]string{"tenant": "x"}
		return r, nil
	}}
	p := newPool(t, map[string]string{
		"headers": startUnix(t, onHeaders), "chunk": startUnix(t, wrongChunk), "frame": startUnix(t, frameOnBody),
		"route": startUnix(t, routeOnBody), "r1": startUnix(t, redactor("[xxxx]")), "r2": startUnix(t, redactor("[yyyy]")),
	})
	c := newClient(t)
	events := httpguard.WithEvents(httpguard.RequestHeaders | httpguard.RequestBody)
	for _, tc := range []struct {
		name   string
		agents []httpguard.RouteOption
	}{
		{"headers", []httpguard.RouteOption{httpguard.WithAgent("headers", events)}},
		{"chunk", []httpguard.RouteOption{httpguard.WithAgent("chunk", events)}},
		{"frame", []httpguard.RouteOption{httpguard.WithAgent("frame", events)}},
		{"route", []httpguard.RouteOption{httpguard.WithAgent("route", events)}},
		{"two", []httpguard.RouteOption{httpguard.WithAgent("r1", events), httpguard.WithAgent("r2", events)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up, got := recordingUpstream(t)
			g := newGuard(t, p, httpguard.WithChunkSize(6), httpguard.WithRoute("/", tc.agents...))
			res := do(t, c, "POST", serveProxy(t, g, up)+"/", strings.NewReader("secret"))
			assert.Equal(t, http.StatusServiceUnavailable, res.status)
			assert.Empty(t, got(), "no byte of the body, edited or not, reached the upstream")
		})
	}
	t.Run("open", func(t *testing.T) {
		t.Parallel()
		g := newGuard(t, p, httpguard.WithChunkSize(6), httpguard.WithRoute("/",
			httpguard.WithAgent("chunk", events, httpguard.FailOpen())))
		up, got := recordingUpstream(t)
		res := do(t, c, "POST", serveProxy(t, g, up)+"/", strings.NewReader("secret"))
		assert.Equal(t, http.StatusOK, res.status)
		assert.Equal(t, "secret", got(), "failed open: the chunk goes on unedited")
	})
}

// TestResponseBodyMutation: the client gets the response as the agent
// left it; a change of length before the header went out drops the
// upstream's Content-Length.
func TestResponseBodyMutation(t *testing.T) {
	t.Parallel()
	a := &script{rspBody: func(_ context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
		if bytes.Contains(ev.GetData(), []byte("two")) || bytes.Contains(ev.GetData(), []byte("secret")) {
			return agent.ReplaceResponseBody(ev, []byte("2")), nil
		}
		return agent.Allow(), nil
	}}
	p := newPool(t, map[string]string{"a": startUnix(t, a)})
	g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("a", httpguard.WithEvents(httpguard.ResponseBody))))
	up := newUpstream(t)
	base := serveProxy(t, g, up.URL)
	c := newClient(t)

	res := do(t, c, "GET", base+"/stream", nil)
	require.NoError(t, res.err)
	assert.Equal(t, "one2", res.body)

	res = do(t, c, "POST", base+"/", strings.NewReader("the secret")) // echoed with Content-Length
	require.NoError(t, res.err)
	assert.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, "2", res.body)
	assert.Empty(t, res.header.Get("Content-Length"))
}

// TestRoutingMetadata: next reads what the agents set on the request
// headers; two agents that disagree on a key fail the request.
func TestRoutingMetadata(t *testing.T) {
	t.Parallel()
	tenant := func(v string) *script {
		return &script{headers: func(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
			r := agent.Allow()
			r.RoutingMetadata = map[string]string{"tenant": v}
			return r, nil
		}}
	}
	p := newPool(t, map[string]string{"blue": startUnix(t, tenant("blue")), "blue2": startUnix(t, tenant("blue")),
		"green": startUnix(t, tenant("green"))})
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, httpguard.RoutingMetadata(r.Context())["tenant"])
	})
	c := newClient(t)
	hdr := httpguard.WithEvents(httpguard.RequestHeaders)
	agree := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("blue", hdr), httpguard.WithAgent("blue2", hdr)))
	res := do(t, c, "GET", serve(t, agree.Middleware(next))+"/", nil)
	assert.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, "blue", res.body)

	differ := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("blue", hdr), httpguard.WithAgent("green", hdr)))
	res = do(t, c, "GET", serve(t, differ.Middleware(next))+"/", nil)
	assert.Equal(t, http.StatusServiceUnavailable, res.status)
	assert.Nil(t, httpguard.RoutingMetadata(context.Background()))
}

// TestWebsocketDecisions: a dropped frame never reaches the upstream and
// the connection goes on; a close ends it.
func TestWebsocketDecisions(t *testing.T) {
	t.Parallel()
	a := &script{frame: func(_ context.Context, ev *agentv2.WebSocketFrameEvent) (*agentv2.AgentResponse, error) {
		switch {
		case bytes.Contains(ev.GetPayload(), []byte("drop")):
			return agent.DropFrame(), nil
		case bytes.Contains(ev.GetPayload(), []byte("bye")):
			return agent.CloseWebSocket(4000, "bye now"), nil
		}
		return agent.Allow(), nil
	}}
	p := newPool(t, map[string]string{"a": startUnix(t, a)})
	g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("a", httpguard.WithEvents(httpguard.WebSocketFrames))))
	var upstreamGot atomic.Int64
	up := echoWebsocket(t, &upstreamGot)
	base := serveProxy(t, g, up)
	conn, _, err := dialWebsocket(t, base+"/ws")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte("drop me")))
	got, err := roundTrip(conn, "hello")
	require.NoError(t, err)
	assert.Equal(t, "hello", got, "the dropped frame was never echoed")
	assert.Equal(t, int64(1), upstreamGot.Load())

	_, err = roundTrip(conn, "bye")
	var ce websocket.CloseError
	require.ErrorAs(t, err, &ce, "the agent closed the connection")
	assert.Equal(t, websocket.StatusCode(4000), ce.Code)
	assert.Equal(t, "bye now", ce.Reason)
	assert.Equal(t, int64(1), upstreamGot.Load(), "the closing frame never reached the upstream")
}
