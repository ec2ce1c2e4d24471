package agentwire

import (
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// CorrelationID returns the correlation id of an event envelope, and false if
// msg carries no event (handshake, cancel, ping, notices). It is the
// generated [agentv2.ProxyToAgent.EventCorrelationID].
func CorrelationID(msg *agentv2.ProxyToAgent) (string, bool) { return msg.EventCorrelationID() }

// EventTypeOf returns the event kind of an envelope (EVENT_TYPE_UNSPECIFIED
// for non-events). It is the generated [agentv2.ProxyToAgent.EventType].
func EventTypeOf(msg *agentv2.ProxyToAgent) agentv2.EventType { return msg.EventType() }
