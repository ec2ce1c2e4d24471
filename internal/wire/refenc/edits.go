package refenc

import (
	"encoding/base64"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// The reference's answer edits map onto AgentResponse fields 22–25:
// BodyMutation {data: Option<String> (base64), chunk_index}, the
// externally tagged WebSocketDecision (allow, drop, close {code, reason})
// and routing_metadata. The proxy checks where each edit may appear.

func routingOut(m map[string]string) *obj {
	out := mp(len(m))
	for _, k := range sortedKeys(m) {
		out.add(k, m[k])
	}
	return out
}

// mutationOut writes a BodyMutation; data absent (nil) means "leave the
// chunk", present and empty means "drop it", as in the reference.
func mutationOut(m *agentv2.BodyMutation) any {
	if m == nil {
		return nil
	}
	var data any
	if m.Data != nil {
		data = base64.StdEncoding.EncodeToString(m.Data)
	}
	return strct(2).add("data", data).add("chunk_index", uint64(m.GetChunkIndex()))
}

func mutationIn(r *rd, v any, what string) *agentv2.BodyMutation {
	if v == nil {
		return nil
	}
	x := r.rec(v, what)
	m := &agentv2.BodyMutation{ChunkIndex: r.u32OrZero(x.get(1, "chunk_index"), what+".chunk_index")}
	if d := x.get(0, "data"); d != nil {
		m.Data = r.body(d, what+".data")
		if m.Data == nil {
			m.Data = []byte{}
		}
	}
	return m
}

// wsDecisionOut writes a websocket verdict; a close without a code goes
// out as 1008 (policy violation), what agentwire's proxy would send.
func wsDecisionOut(d *agentv2.WebSocketDecision) any {
	switch d.GetAction() {
	case agentv2.WebSocketDecision_ACTION_ALLOW:
		return "allow"
	case agentv2.WebSocketDecision_ACTION_DROP:
		return "drop"
	case agentv2.WebSocketDecision_ACTION_CLOSE:
		code := d.GetCloseCode()
		if code == 0 {
			code = 1008
		}
		return mp(1).add("close", strct(2).add("code", uint64(code)).add("reason", d.GetCloseReason()))
	}
	return nil
}

func wsDecisionIn(r *rd, v any) *agentv2.WebSocketDecision {
	if v == nil {
		return nil
	}
	name, body := variant(r, v, "websocket_decision")
	switch name {
	case "allow":
		return &agentv2.WebSocketDecision{Action: agentv2.WebSocketDecision_ACTION_ALLOW}
	case "drop":
		return &agentv2.WebSocketDecision{Action: agentv2.WebSocketDecision_ACTION_DROP}
	case "close":
		x := r.rec(body, "websocket_decision.close")
		code := r.u32(x.get(0, "code"), "websocket_decision.close.code")
		if code > 0xffff {
			r.fail("websocket_decision.close.code: %d is not a u16", code)
		}
		return &agentv2.WebSocketDecision{
			Action:      agentv2.WebSocketDecision_ACTION_CLOSE,
			CloseCode:   code,
			CloseReason: r.str(x.get(1, "reason"), "websocket_decision.close.reason"),
		}
	}
	r.fail("websocket_decision %q", name)
	return nil
}

// u32OrZero reads a #[serde(default)] u32: absent is 0.
func (r *rd) u32OrZero(v any, what string) uint32 {
	if v == nil {
		return 0
	}
	return r.u32(v, what)
}
