package agent

import (
	"context"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Peer is the proxy connection an event arrived on, as seen from a handler.
// Its methods are safe for concurrent use; they fail with CodeUnavailable
// once the connection has ended.
type Peer struct {
	s *session
}

// PeerFromContext returns the connection of a handler's context, or nil
// outside a streaming connection (for example in a unary ProcessEvent call).
func PeerFromContext(ctx context.Context) *Peer {
	p, _ := ctx.Value(peerKey{}).(*Peer)
	return p
}

// Handshake returns the proxy's handshake. Do not modify it.
func (p *Peer) Handshake() *agentv2.HandshakeRequest { return p.s.hs }

// RequestConfigUpdate sends a config_update to the proxy and waits for its
// config_response, matched by request id (assigned if req has none). The
// proxy's refusal is a response with Accepted false, not an error; errors
// are for the connection or ctx ending first. req must not be changed
// while the call runs.
func (p *Peer) RequestConfigUpdate(ctx context.Context, req *agentv2.ConfigUpdateRequest) (*agentv2.ConfigUpdateResponse, error) {
	return p.s.requestConfigUpdate(ctx, req)
}

// Log forwards a log line to the proxy. When ctx is a handler's context
// the line carries the request's correlation id.
func (p *Peer) Log(ctx context.Context, level agentv2.LogLevel, msg string, fields map[string]string) error {
	m := &agentv2.LogMessage{Level: level, Message: msg, Fields: fields, TimestampMs: p.s.srv.nowMs()}
	if cid, ok := ctx.Value(correlationKey{}).(string); ok {
		m.CorrelationId = &cid
	}
	if err := p.s.st.Send(ctx, &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Log{Log: m}}); err != nil {
		return agentwire.WrapContextError(err)
	}
	return nil
}

type correlationKey struct{}
