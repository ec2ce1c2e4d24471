package transport

import (
	"context"

	agentwire "github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// A session acts on what its agent sends through the generated visitor:
// one method per case of AgentToProxy, so a case added to the schema is a
// method the session must implement.
var _ agentv2.AgentToProxyVisitor = (*session)(nil)

// dispatch acts on one message from the agent.
func (s *session) dispatch(msg *agentv2.AgentToProxy) error {
	known, err := agentv2.VisitAgentToProxy(s, msg)
	if !known {
		// A case newer than this version, sent on a transport without frame
		// types (gRPC): count it like an unknown frame.
		s.unknownFrames.Add(1)
	}
	return err
}

// VisitResponse hands a decision to the call it answers.
func (s *session) VisitResponse(x *agentv2.AgentToProxy, resp *agentv2.AgentResponse) error {
	s.deliver(x.GetEventId(), resp)
	return nil
}

// VisitHealth records the agent's health and reports it.
func (s *session) VisitHealth(_ *agentv2.AgentToProxy, h *agentv2.HealthStatus) error {
	s.mu.Lock()
	s.health = h.GetState()
	s.load = h.GetLoad()
	s.healthAt = s.cfg.now()
	st := s.statusLocked()
	s.state = st.State
	s.mu.Unlock()
	if f := s.cfg.onHealth; f != nil {
		f(h)
	}
	if f := s.cfg.onStatus; f != nil {
		f(st)
	}
	return nil
}

// VisitMetrics hands a metrics report to the WithOnMetrics callback.
func (s *session) VisitMetrics(_ *agentv2.AgentToProxy, m *agentv2.MetricsReport) error {
	if f := s.cfg.onMetrics; f != nil {
		f(m)
	}
	return nil
}

// VisitFlowControl pauses or resumes the connection or one request.
func (s *session) VisitFlowControl(_ *agentv2.AgentToProxy, sig *agentv2.FlowControlSignal) error {
	s.mu.Lock()
	switch s.pauses.Apply(sig) {
	case agentv2.FlowAction_FLOW_ACTION_RESUME:
		close(s.resume)
		s.resume = make(chan struct{})
	case agentv2.FlowAction_FLOW_ACTION_UNSPECIFIED:
		s.mu.Unlock()
		return nil
	}
	s.pausesChangedLocked()
	changed, st := s.stateChangedLocked()
	s.mu.Unlock()
	if changed && s.cfg.onStatus != nil {
		s.cfg.onStatus(st)
	}
	return nil
}

// VisitPong wakes the Ping waiting for this sequence number.
func (s *session) VisitPong(_ *agentv2.AgentToProxy, p *agentv2.Pong) error {
	s.mu.Lock()
	ch := s.pings[p.GetSequence()]
	delete(s.pings, p.GetSequence())
	s.mu.Unlock()
	if ch != nil {
		close(ch)
	}
	return nil
}

// VisitPing answers the agent's ping in the background.
func (s *session) VisitPing(x *agentv2.AgentToProxy, p *agentv2.Ping) error {
	pong := &agentv2.ProxyToAgent{EventId: x.GetEventId(), Message: &agentv2.ProxyToAgent_Pong{Pong: &agentv2.Pong{
		Sequence:        p.GetSequence(),
		PingTimestampMs: p.GetTimestampMs(),
		TimestampMs:     uint64(s.cfg.now().UnixMilli()),
	}}}
	s.goBackground("pong", func(ctx context.Context) { _ = s.w.send(ctx, pong) })
	return nil
}

// VisitConfigUpdate asks the WithOnConfigUpdate callback in the background
// and sends its answer.
func (s *session) VisitConfigUpdate(_ *agentv2.AgentToProxy, req *agentv2.ConfigUpdateRequest) error {
	s.goBackground("config update", func(ctx context.Context) {
		var resp *agentv2.ConfigUpdateResponse
		if f := s.cfg.onConfigUpdate; f != nil {
			resp = f(ctx, req)
		}
		if resp == nil {
			msg := "proxy has no config-update handler"
			resp = &agentv2.ConfigUpdateResponse{Error: &msg}
		}
		resp.RequestId = req.GetRequestId()
		if resp.TimestampMs == 0 {
			resp.TimestampMs = uint64(s.cfg.now().UnixMilli())
		}
		_ = s.w.send(ctx, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ConfigResponse{ConfigResponse: resp}})
	})
	return nil
}

// VisitLog writes the agent's log line (see agentlog.go).
func (s *session) VisitLog(_ *agentv2.AgentToProxy, l *agentv2.LogMessage) error {
	s.onLog(l)
	return nil
}

// VisitHandshake fails the connection: the handshake happened at dial.
func (s *session) VisitHandshake(*agentv2.AgentToProxy, *agentv2.HandshakeResponse) error {
	return agentwire.Errorf(agentwire.CodeInternal, "%w: second handshake response", ErrProtocol)
}

// VisitRegistration fails the connection: registration precedes the
// handshake.
func (s *session) VisitRegistration(*agentv2.AgentToProxy, *agentv2.RegistrationRequest) error {
	return agentwire.Errorf(agentwire.CodeInternal, "%w: registration after the handshake", ErrProtocol)
}
