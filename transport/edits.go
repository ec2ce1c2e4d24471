package transport

import (
	"errors"
	"fmt"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// ErrMisplacedEdit: an answer carries a body mutation, websocket decision
// or routing metadata that does not fit the event it answers (another
// event kind, another chunk; protocol.md §18). The call fails with
// CodeInternal, as for an answer with no decision: an edit the proxy
// cannot tie to what it sent is never passed on as an allow.
var ErrMisplacedEdit = errors.New("transport: edit does not fit the event it answers")

// checkEdits reports an answer whose edit fields do not fit ev.
func checkEdits(ev *agentv2.ProxyToAgent, resp *agentv2.AgentResponse) error {
	return editsFit(ev.EventType(), chunkIndex(ev), resp)
}

// chunkIndex is the index of ev's body chunk, if it is one.
func chunkIndex(ev *agentv2.ProxyToAgent) uint32 {
	if c := ev.GetRequestBodyChunk(); c != nil {
		return c.GetChunkIndex()
	}
	return ev.GetResponseBodyChunk().GetChunkIndex()
}

// editsFit reports an answer whose edit fields do not fit an event of
// kind t, and of body chunk index chunk.
func editsFit(t agentv2.EventType, chunk uint32, resp *agentv2.AgentResponse) error {
	rq, rs := resp.GetRequestBodyMutation(), resp.GetResponseBodyMutation()
	ws, md := resp.GetWebsocketDecision(), resp.GetRoutingMetadata()
	if rq == nil && rs == nil && ws == nil && len(md) == 0 {
		return nil
	}
	var err error
	switch {
	case rq != nil && t != agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK,
		rs != nil && t != agentv2.EventType_EVENT_TYPE_RESPONSE_BODY_CHUNK,
		ws != nil && t != agentv2.EventType_EVENT_TYPE_WEBSOCKET_FRAME,
		len(md) > 0 && t != agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS:
		err = fmt.Errorf("%w: an edit for another kind of event in the answer to %v", ErrMisplacedEdit, t)
	case rq != nil && rq.GetChunkIndex() != chunk, rs != nil && rs.GetChunkIndex() != chunk:
		err = fmt.Errorf("%w: a body mutation for another chunk", ErrMisplacedEdit)
	default:
		return nil
	}
	return agentwire.NewError(agentwire.CodeInternal, err)
}
