package httpguard_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

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
