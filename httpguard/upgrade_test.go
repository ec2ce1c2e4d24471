package httpguard_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/websocket"

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
	up := serve(t, websocket.Handler(func(c *websocket.Conn) { _, _ = io.Copy(c, c) }))
	base := serveProxy(t, g, up)
	ws := strings.Replace(base, "http://", "ws://", 1)

	conn, err := websocket.Dial(ws+"/ws", "", base)
	require.NoError(t, err)
	_, err = conn.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(conn, buf)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf))
	require.NoError(t, conn.Close())

	_, err = websocket.Dial(ws+"/ws/deny", "", base)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad status")
}

// TestWebsocketFrames: frames in both directions go to the agent that
// asked for them; a blocked frame never arrives, and the connection ends.
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
	up := echoWebsocket(t, &upstreamGot, "leak", "the secret")
	base := serveProxy(t, g, up)
	ws := strings.Replace(base, "http://", "ws://", 1) + "/ws"
	roundTrip := func(conn *websocket.Conn, msg string) (string, error) {
		if _, err := conn.Write([]byte(msg)); err != nil {
			return "", err
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, err := conn.Read(buf)
		return string(buf[:n]), err
	}

	conn, err := websocket.Dial(ws, "", base)
	require.NoError(t, err)
	got, err := roundTrip(conn, "hello")
	require.NoError(t, err)
	assert.Equal(t, "hello", got)
	_, err = roundTrip(conn, "evil")
	assert.Error(t, err, "a blocked frame ends the connection")
	conn.Close()
	assert.Equal(t, int64(1), upstreamGot.Load(), "the blocked frame never reached the upstream")

	conn, err = websocket.Dial(ws, "", base)
	require.NoError(t, err)
	defer conn.Close()
	got, err = roundTrip(conn, "leak")
	assert.Error(t, err, "a blocked server frame ends the connection")
	assert.Empty(t, got)

	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, seen, "true FRAME_TYPE_TEXT hello")
	assert.Contains(t, seen, "false FRAME_TYPE_TEXT hello")
	assert.Contains(t, seen, "false FRAME_TYPE_TEXT the secret")
}

// echoWebsocket serves a websocket upstream that counts the messages it
// reads in got and echoes each; replace, a pair, answers replace[1] to
// replace[0].
func echoWebsocket(t *testing.T, got *atomic.Int64, replace ...string) string {
	return serve(t, websocket.Handler(func(c *websocket.Conn) {
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			got.Add(1)
			reply := buf[:n]
			if len(replace) == 2 && string(reply) == replace[0] {
				reply = []byte(replace[1])
			}
			if _, err := c.Write(reply); err != nil {
				return
			}
		}
	}))
}
