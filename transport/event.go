package transport

import (
	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// CorrelationID returns the correlation id of an event envelope, and false if
// msg carries no event; it is [agentwire.CorrelationID], shared with the
// agent side.
func CorrelationID(msg *agentv2.ProxyToAgent) (string, bool) { return agentwire.CorrelationID(msg) }

// EventType returns the event kind of an envelope (EVENT_TYPE_UNSPECIFIED
// for non-events); it is [agentwire.EventTypeOf].
func EventType(msg *agentv2.ProxyToAgent) agentv2.EventType { return agentwire.EventTypeOf(msg) }
