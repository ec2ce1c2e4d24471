package httpguard_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
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

// TestWebsocketUpgrade: a websocket upgrade is guarded on its headers,
// then passes through the reverse proxy; a blocked one never upgrades.
func TestWebsocketUpgrade(t *testing.T) {
	t.Parallel()
	a := &script{headers: func(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
		if strings.HasPrefix(ev.GetUri(), "/ws/deny") {
			return agent.Block(http.StatusForbidden, "no\n"), nil
		}
		return agent.Allow(), nil
	}}
	p := newPool(t, map[string]string{"a": startUnix(t, a)})
	g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("a",
		httpguard.WithEvents(httpguard.ResponseHeaders|httpguard.RequestComplete))))
	base := serveProxy(t, g, echoWebsocket(t, nil))

	conn, _, err := dialWebsocket(t, base+"/ws")
	require.NoError(t, err)
	got, err := roundTrip(conn, "ping")
	require.NoError(t, err)
	assert.Equal(t, "ping", got)
	require.NoError(t, conn.Close(websocket.StatusNormalClosure, ""))

	_, res, err := dialWebsocket(t, base+"/ws/deny")
	require.Error(t, err)
	require.NotNil(t, res)
	assert.Equal(t, http.StatusForbidden, res.StatusCode)
}

// TestWebsocketFrames: frames in both directions go to the agent that
// asked for them; a blocked frame never arrives, and the connection ends
// with a policy-violation close.
func TestWebsocketFrames(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	a := &script{frame: func(_ context.Context, ev *agentv2.WebSocketFrameEvent) (*agentv2.AgentResponse, error) {
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%v %v %s", ev.GetClientToServer(), ev.GetFrameType(), ev.GetPayload()))
		mu.Unlock()
		if bytes.Contains(ev.GetPayload(), []byte("evil")) || bytes.Contains(ev.GetPayload(), []byte("secret")) {
			return agent.Block(http.StatusForbidden, ""), nil
		}
		return agent.Allow(), nil
	}}
	p := newPool(t, map[string]string{"a": startGRPC(t, a)})
	g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("a", httpguard.WithEvents(httpguard.WebSocketFrames))))
	var upstreamGot atomic.Int64
	base := serveProxy(t, g, echoWebsocket(t, &upstreamGot, "leak", "the secret"))

	conn, _, err := dialWebsocket(t, base+"/ws")
	require.NoError(t, err)
	got, err := roundTrip(conn, "hello")
	require.NoError(t, err)
	assert.Equal(t, "hello", got)
	_, err = roundTrip(conn, "evil")
	assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "a blocked frame ends the connection: %v", err)
	assert.Equal(t, int64(1), upstreamGot.Load(), "the blocked frame never reached the upstream")

	conn, _, err = dialWebsocket(t, base+"/ws")
	require.NoError(t, err)
	got, err = roundTrip(conn, "leak")
	assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "a blocked server frame ends the connection: %v", err)
	assert.Empty(t, got)

	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, seen, "true FRAME_TYPE_TEXT hello")
	assert.Contains(t, seen, "false FRAME_TYPE_TEXT hello")
	assert.Contains(t, seen, "false FRAME_TYPE_TEXT the secret")
}

// echoWebsocket serves a websocket upstream that counts the messages it
// reads in got (if not nil) and echoes each; replace, a pair, answers
// replace[1] to replace[0].
func echoWebsocket(t *testing.T, got *atomic.Int64, replace ...string) string {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if got != nil {
				got.Add(1)
			}
			if len(replace) == 2 && string(msg) == replace[0] {
				msg = []byte(replace[1])
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
}

// dialWebsocket opens a websocket to u (http:// or https://), closed with
// the test; res is the server's answer when the upgrade fails.
func dialWebsocket(t *testing.T, u string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		return nil, res, err
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c, res, nil
}

// roundTrip sends msg as a text message and returns the next message.
func roundTrip(c *websocket.Conn, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return "", err
	}
	_, got, err := c.Read(ctx)
	return string(got), err
}
