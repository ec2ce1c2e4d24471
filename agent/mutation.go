package agent

import (
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// ReplaceRequestBody returns an allow that forwards data upstream in place
// of request body chunk ev; empty data drops the chunk. The proxy refuses
// it as the answer to any other event.
func ReplaceRequestBody(ev *agentv2.BodyChunkEvent, data []byte) *agentv2.AgentResponse {
	resp := Allow()
	resp.RequestBodyMutation = bodyMutation(ev, data)
	return resp
}

// ReplaceResponseBody returns an allow that sends data to the client in
// place of response body chunk ev; empty data drops the chunk.
func ReplaceResponseBody(ev *agentv2.BodyChunkEvent, data []byte) *agentv2.AgentResponse {
	resp := Allow()
	resp.ResponseBodyMutation = bodyMutation(ev, data)
	return resp
}

// bodyMutation names ev's chunk, so that the proxy can check the answer is
// for the chunk it holds; a nil data becomes empty (set, so: drop).
func bodyMutation(ev *agentv2.BodyChunkEvent, data []byte) *agentv2.BodyMutation {
	if data == nil {
		data = []byte{}
	}
	return &agentv2.BodyMutation{ChunkIndex: ev.GetChunkIndex(), Data: data}
}

// DropFrame returns an allow that drops the websocket frame it answers:
// the connection stays open, the peer never sees the frame.
func DropFrame() *agentv2.AgentResponse {
	resp := Allow()
	resp.WebsocketDecision = &agentv2.WebSocketDecision{Action: agentv2.WebSocketDecision_ACTION_DROP}
	return resp
}

// CloseWebSocket returns an answer to a websocket frame that closes the
// connection both ways with code (RFC 6455 section 7.4; 1008, policy
// violation, if 0) and reason.
func CloseWebSocket(code uint32, reason string) *agentv2.AgentResponse {
	if code == 0 {
		code = 1008
	}
	resp := Allow()
	resp.WebsocketDecision = &agentv2.WebSocketDecision{
		Action:      agentv2.WebSocketDecision_ACTION_CLOSE,
		CloseCode:   code,
		CloseReason: reason,
	}
	return resp
}
