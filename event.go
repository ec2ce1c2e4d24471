package agentwire

import (
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// CorrelationID returns the correlation id of an event envelope, and false if
// msg carries no event (handshake, cancel, ping, notices).
func CorrelationID(msg *agentv2.ProxyToAgent) (string, bool) {
	switch m := msg.GetMessage().(type) {
	case *agentv2.ProxyToAgent_RequestHeaders:
		return m.RequestHeaders.GetMetadata().GetCorrelationId(), true
	case *agentv2.ProxyToAgent_RequestBodyChunk:
		return m.RequestBodyChunk.GetCorrelationId(), true
	case *agentv2.ProxyToAgent_ResponseHeaders:
		return m.ResponseHeaders.GetCorrelationId(), true
	case *agentv2.ProxyToAgent_ResponseBodyChunk:
		return m.ResponseBodyChunk.GetCorrelationId(), true
	case *agentv2.ProxyToAgent_RequestComplete:
		return m.RequestComplete.GetCorrelationId(), true
	case *agentv2.ProxyToAgent_WebsocketFrame:
		return m.WebsocketFrame.GetCorrelationId(), true
	case *agentv2.ProxyToAgent_Guardrail:
		return m.Guardrail.GetCorrelationId(), true
	case *agentv2.ProxyToAgent_Configure:
		return "", true
	}
	return "", false
}

// EventTypeOf returns the event kind of an envelope (EVENT_TYPE_UNSPECIFIED
// for non-events).
func EventTypeOf(msg *agentv2.ProxyToAgent) agentv2.EventType {
	switch msg.GetMessage().(type) {
	case *agentv2.ProxyToAgent_RequestHeaders:
		return agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS
	case *agentv2.ProxyToAgent_RequestBodyChunk:
		return agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK
	case *agentv2.ProxyToAgent_ResponseHeaders:
		return agentv2.EventType_EVENT_TYPE_RESPONSE_HEADERS
	case *agentv2.ProxyToAgent_ResponseBodyChunk:
		return agentv2.EventType_EVENT_TYPE_RESPONSE_BODY_CHUNK
	case *agentv2.ProxyToAgent_RequestComplete:
		return agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE
	case *agentv2.ProxyToAgent_WebsocketFrame:
		return agentv2.EventType_EVENT_TYPE_WEBSOCKET_FRAME
	case *agentv2.ProxyToAgent_Guardrail:
		return agentv2.EventType_EVENT_TYPE_GUARDRAIL_INSPECT
	case *agentv2.ProxyToAgent_Configure:
		return agentv2.EventType_EVENT_TYPE_CONFIGURE
	}
	return agentv2.EventType_EVENT_TYPE_UNSPECIFIED
}
