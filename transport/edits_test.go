package transport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// editor answers each event with the edit its data names.
type editor struct{ agent.Base }

func (editor) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	switch ev.GetUri() {
	case "/mutate":
		return agent.ReplaceRequestBody(&agentv2.BodyChunkEvent{}, []byte("x")), nil
	case "/route":
		r := agent.Allow()
		r.RoutingMetadata = map[string]string{"tenant": "blue"}
		return r, nil
	}
	return agent.Allow(), nil
}

func (editor) RequestBodyChunk(_ context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	switch string(ev.GetData()) {
	case "wrong":
		return agent.ReplaceRequestBody(&agentv2.BodyChunkEvent{ChunkIndex: ev.GetChunkIndex() + 1}, []byte("x")), nil
	case "response":
		return agent.ReplaceResponseBody(ev, []byte("x")), nil
	case "frame":
		return agent.DropFrame(), nil
	case "route":
		r := agent.Allow()
		r.RoutingMetadata = map[string]string{"tenant": "blue"}
		return r, nil
	}
	return agent.ReplaceRequestBody(ev, []byte("redacted")), nil
}

// TestMisplacedEdits: an answer whose edit does not fit the event it
// answers fails that call (ErrMisplacedEdit, CodeInternal), whatever its
// decision; edits that fit pass intact, and the connection goes on.
func TestMisplacedEdits(t *testing.T) {
	t.Parallel()
	srv, err := agent.NewServer(editor{})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	path := serveUnix(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := transport.DialUnix(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })

	for _, ev := range []*agentv2.ProxyToAgent{
		headers("r1", "POST", "/mutate"),
		bodyChunk("r2", 3, "wrong"),
		bodyChunk("r3", 0, "response"),
		bodyChunk("r4", 0, "frame"),
		bodyChunk("r5", 0, "route"),
	} {
		resp, err := c.Send(ctx, ev)
		require.Error(t, err, "%v", ev)
		assert.Nil(t, resp)
		assert.True(t, errors.Is(err, transport.ErrMisplacedEdit), "%v", err)
		assert.Equal(t, agentwire.CodeInternal, agentwire.CodeOf(err))
	}

	resp, err := c.Send(ctx, headers("r6", "GET", "/route"))
	require.NoError(t, err)
	assert.Equal(t, "blue", resp.GetRoutingMetadata()["tenant"])
	resp, err = c.Send(ctx, bodyChunk("r7", 5, "secret"))
	require.NoError(t, err)
	assert.Equal(t, uint32(5), resp.GetRequestBodyMutation().GetChunkIndex())
	assert.Equal(t, []byte("redacted"), resp.GetRequestBodyMutation().GetData())
}
