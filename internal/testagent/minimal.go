package testagent

import (
	"slices"
	"strings"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// MinimalBlockPrefix is the path prefix a [Minimal] agent blocks with 403.
const MinimalBlockPrefix = "/admin"

// Minimal is a script for a [Peer] that behaves like a minimal third-party
// Sentinel v2 agent: it declares an agent id and the five HTTP event kinds
// and nothing else (no features, no limits, no health reports, no event-id
// echo), yet answers every event in order, answers pings, and rejects a
// handshake without version 2. Its zero value conforms.
type Minimal struct {
	// AcceptAnyVersion accepts a handshake whatever versions it offers, a
	// conformance failure.
	AcceptAnyVersion bool
	// IgnorePings never answers a ping: a check that stalls.
	IgnorePings bool
	// IgnoreUnlisted never answers an event of a kind it did not list, as
	// many agents built on an older schema do.
	IgnoreUnlisted bool
}

// Choose is a [Chooser] that runs m on every connection.
func (m Minimal) Choose(*agentv2.ProxyToAgent) Script { return m.Serve }

// minimalEvents are the kinds a Minimal agent lists in supported_events.
var minimalEvents = []agentv2.EventType{
	agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK,
	agentv2.EventType_EVENT_TYPE_RESPONSE_HEADERS, agentv2.EventType_EVENT_TYPE_RESPONSE_BODY_CHUNK,
	agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE,
}

// Serve handshakes and then answers c's events one at a time, in the order
// they arrive, until the connection ends.
func (m Minimal) Serve(c *PeerConn) {
	hs := c.First().GetHandshake()
	if hs == nil {
		return
	}
	if !m.AcceptAnyVersion && !slices.Contains(hs.GetSupportedVersions(), transport.ProtocolVersion) {
		msg := "unsupported protocol versions: this agent speaks version 2"
		_ = c.Send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
			ProtocolVersion: transport.ProtocolVersion, Error: &msg,
		}}})
		return
	}
	if err := c.Send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
		ProtocolVersion: transport.ProtocolVersion, Success: true,
		Capabilities: &agentv2.AgentCapabilities{
			ProtocolVersion: transport.ProtocolVersion, AgentId: "minimal", SupportedEvents: minimalEvents,
		},
	}}}); err != nil {
		return
	}
	for {
		msg, err := c.Recv()
		if err != nil {
			return
		}
		if err := m.answer(c, msg); err != nil {
			return
		}
	}
}

// answer answers an event (block under MinimalBlockPrefix, allow the rest)
// with event_id 0, and a ping with a pong; it ignores everything else.
func (m Minimal) answer(c *PeerConn, msg *agentv2.ProxyToAgent) error {
	if p := msg.GetPing(); p != nil {
		if m.IgnorePings {
			return nil
		}
		return c.Send(&agentv2.AgentToProxy{EventId: msg.GetEventId(), Message: &agentv2.AgentToProxy_Pong{
			Pong: &agentv2.Pong{Sequence: p.GetSequence(), PingTimestampMs: p.GetTimestampMs()}}})
	}
	corr, ok := msg.EventCorrelationID()
	if !ok || m.IgnoreUnlisted && !slices.Contains(minimalEvents, msg.EventType()) {
		return nil
	}
	resp := &agentv2.AgentResponse{CorrelationId: corr, Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}
	if strings.HasPrefix(msg.GetRequestHeaders().GetUri(), MinimalBlockPrefix) {
		resp.Decision = &agentv2.AgentResponse_Block{Block: &agentv2.BlockDecision{Status: 403}}
	}
	return c.Send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Response{Response: resp}})
}
