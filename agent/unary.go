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
	cid, ok := agentwire.CorrelationID(m)
	if !ok {
		u := &unaryControl{srv: srv}
		known, err := agentv2.VisitProxyToAgentControl(u, m)
		if err == nil && !known {
			err = notUnary(m)
		}
		if err != nil {
			return nil, err
		}
		return u.reply, nil
	}
	resp, err := srv.call(ctx, m)
	return newReply(m.EventId, cid, resp, err), nil
}

// unaryControl answers the control messages ProcessEvent takes, through
// the generated visitor, and refuses the others.
type unaryControl struct {
	srv   *Server
	reply *agentv2.AgentToProxy
}

var _ agentv2.ProxyToAgentControlVisitor = (*unaryControl)(nil)

func (u *unaryControl) VisitHandshake(x *agentv2.ProxyToAgent, hs *agentv2.HandshakeRequest) error {
	resp, _ := u.srv.handshakeResponse(hs, u.srv.cfg.healthInterval)
	u.reply = &agentv2.AgentToProxy{EventId: x.GetEventId(), Message: &agentv2.AgentToProxy_Handshake{Handshake: resp}}
	return nil
}

func (u *unaryControl) VisitPing(x *agentv2.ProxyToAgent, p *agentv2.Ping) error {
	u.reply = u.srv.pong(x, p)
	return nil
}

func (u *unaryControl) VisitCancel(x *agentv2.ProxyToAgent, _ *agentv2.CancelRequest) error {
	return notUnary(x)
}

func (u *unaryControl) VisitDrain(x *agentv2.ProxyToAgent, _ *agentv2.DrainRequest) error {
	return notUnary(x)
}

func (u *unaryControl) VisitShutdown(x *agentv2.ProxyToAgent, _ *agentv2.ShutdownRequest) error {
	return notUnary(x)
}

func (u *unaryControl) VisitConfigResponse(x *agentv2.ProxyToAgent, _ *agentv2.ConfigUpdateResponse) error {
	return notUnary(x)
}

func (u *unaryControl) VisitRegistrationResponse(x *agentv2.ProxyToAgent, _ *agentv2.RegistrationResponse) error {
	return notUnary(x)
}

func (u *unaryControl) VisitPong(x *agentv2.ProxyToAgent, _ *agentv2.Pong) error {
	return notUnary(x)
}

// notUnary is the error for a message ProcessEvent does not take.
func notUnary(m *agentv2.ProxyToAgent) error {
	return agentwire.Errorf(agentwire.CodeInvalidArgument, "agent: ProcessEvent takes an event, a ping or a handshake, not %T", m.Message)
}
