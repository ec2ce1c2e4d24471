package agent

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// TestMutationBuilders: each helper names the answered chunk, tells a drop
// (set, empty) from a pass (absent) after a round trip through the wire
// encoding, and keeps the decision an allow.
func TestMutationBuilders(t *testing.T) {
	t.Parallel()
	ev := &agentv2.BodyChunkEvent{ChunkIndex: 7, Data: []byte("secret")}
	roundTrip := func(r *agentv2.AgentResponse) *agentv2.AgentResponse {
		b, err := proto.Marshal(r)
		require.NoError(t, err)
		out := new(agentv2.AgentResponse)
		require.NoError(t, proto.Unmarshal(b, out))
		require.NotNil(t, out.GetAllow(), "a mutation is an allow")
		return out
	}

	r := roundTrip(ReplaceRequestBody(ev, []byte("[redacted]")))
	require.Equal(t, uint32(7), r.GetRequestBodyMutation().GetChunkIndex())
	require.Equal(t, []byte("[redacted]"), r.GetRequestBodyMutation().GetData())
	require.Nil(t, r.ResponseBodyMutation)

	r = roundTrip(ReplaceResponseBody(ev, nil)) // nil data: drop
	require.NotNil(t, r.GetResponseBodyMutation().Data, "a drop is a set, empty data")
	require.Empty(t, r.GetResponseBodyMutation().GetData())
	require.Nil(t, r.RequestBodyMutation)

	r = roundTrip(DropFrame())
	require.Equal(t, agentv2.WebSocketDecision_ACTION_DROP, r.GetWebsocketDecision().GetAction())

	r = roundTrip(CloseWebSocket(0, "bad frame"))
	require.Equal(t, agentv2.WebSocketDecision_ACTION_CLOSE, r.GetWebsocketDecision().GetAction())
	require.Equal(t, uint32(1008), r.GetWebsocketDecision().GetCloseCode())
	require.Equal(t, "bad frame", r.GetWebsocketDecision().GetCloseReason())
}
