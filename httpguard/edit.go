package httpguard

import (
	"context"
	"fmt"
	"maps"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// edit is what the agents asked of the one body chunk or websocket frame an
// ask sent them (protocol.md §18): at most one agent may ask anything of it,
// as the guard does not guess an order between two edits.
type edit struct {
	by    int // the agent that asked; -1 for none
	body  *agentv2.BodyMutation
	frame *agentv2.WebSocketDecision
}

func newEdit() edit { return edit{by: -1} }

// editLocked checks the fields of agent i's answer to an event of kind k
// that only some events may carry, and folds them into e and the request's
// routing metadata. An error makes the answer a failure of agent i: an
// edit the guard cannot tie to what it holds is never ignored.
func (x *exchange) editLocked(k kind, i int, resp *agentv2.AgentResponse, e *edit) error {
	reqM, rspM := resp.GetRequestBodyMutation(), resp.GetResponseBodyMutation()
	ws, md := resp.GetWebsocketDecision(), resp.GetRoutingMetadata()
	if reqM == nil && rspM == nil && ws == nil && len(md) == 0 {
		return nil
	}
	switch {
	case reqM != nil && k != kindRequestBody:
		return fmt.Errorf("request_body_mutation in the answer to %s", k)
	case rspM != nil && k != kindResponseBody:
		return fmt.Errorf("response_body_mutation in the answer to %s", k)
	case ws != nil && k != kindFrame:
		return fmt.Errorf("websocket_decision in the answer to %s", k)
	case len(md) > 0 && k != kindRequestHeaders:
		return fmt.Errorf("routing_metadata in the answer to %s", k)
	}
	m := reqM
	if k == kindResponseBody {
		m = rspM
	}
	if m != nil {
		if sent := x.state[i].chunks(k).index - 1; m.GetChunkIndex() != sent {
			return fmt.Errorf("body mutation for chunk %d in the answer to chunk %d", m.GetChunkIndex(), sent)
		}
		if m.Data == nil {
			m = nil // the chunk passes unchanged
		}
	}
	if ws.GetAction() == agentv2.WebSocketDecision_ACTION_UNSPECIFIED || ws.GetAction() == agentv2.WebSocketDecision_ACTION_ALLOW {
		ws = nil
	}
	if m != nil || ws != nil {
		if e == nil {
			return fmt.Errorf("an edit of %s, which the guard cannot apply", k)
		}
		if e.by >= 0 {
			return fmt.Errorf("agents %q and %q both edit one %s", x.rt.agents[e.by].id, x.rt.agents[i].id, k)
		}
		e.by, e.body, e.frame = i, m, ws
	}
	for key, v := range md {
		if old, ok := x.routing[key]; ok && old != v {
			return fmt.Errorf("routing_metadata %q is %q, another agent set %q", key, v, old)
		}
	}
	if len(md) > 0 {
		if x.routing == nil {
			x.routing = make(map[string]string, len(md))
		}
		maps.Copy(x.routing, md)
	}
	return nil
}

// applied returns data, a body chunk, as agent e.by's mutation leaves it:
// the bytes that agent saw (seen, up to its body limit) are replaced, the
// rest pass.
func (e *edit) applied(data []byte, seen int) []byte {
	if e.body == nil {
		return data
	}
	out := make([]byte, 0, len(e.body.GetData())+len(data)-seen)
	out = append(out, e.body.GetData()...)
	return append(out, data[seen:]...)
}

// RoutingMetadata returns the routing metadata the agents set in their
// answers to the request headers of the guarded request of ctx
// (protocol.md §18), for next's routing; nil if none or outside a guarded
// request. The map is a copy.
func RoutingMetadata(ctx context.Context) map[string]string {
	x, ok := ctx.Value(exchangeKey{}).(*exchange)
	if !ok {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return maps.Clone(x.routing)
}

// String names the event a kind is, as the protocol does.
func (k kind) String() string {
	switch k {
	case kindRequestHeaders:
		return "request_headers"
	case kindRequestBody:
		return "request_body_chunk"
	case kindResponseHeaders:
		return "response_headers"
	case kindResponseBody:
		return "response_body_chunk"
	case kindComplete:
		return "request_complete"
	case kindFrame:
		return "websocket_frame"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}
