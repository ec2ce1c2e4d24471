package agent

import (
	"context"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// processEvent answers one ProcessEvent call, over gRPC or Connect: an
// event goes to the handler, a handshake or a ping is answered here, and
// the other control messages belong on the processing stream.
func (srv *Server) processEvent(ctx context.Context, m *agentv2.ProxyToAgent) (*agentv2.AgentToProxy, error) {
	if srv.draining() {
		return nil, errServerClosed()
	}
	if cid, ok := m.EventCorrelationID(); ok {
		resp, err := srv.call(ctx, m)
		return newReply(m.EventId, cid, resp, err), nil
	}
	if hs := m.GetHandshake(); hs != nil {
		resp, _ := srv.handshakeResponse(hs, srv.cfg.healthInterval, nil)
		return &agentv2.AgentToProxy{EventId: m.GetEventId(), Message: &agentv2.AgentToProxy_Handshake{Handshake: resp}}, nil
	}
	if p := m.GetPing(); p != nil {
		return srv.pong(m, p), nil
	}
	return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "agent: ProcessEvent takes an event, a ping or a handshake, not %T", m.Message)
}
