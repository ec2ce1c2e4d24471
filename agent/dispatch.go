package agent

import (
	"context"
	"strconv"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// A session acts on the proxy's control messages through the generated
// visitor, so a case added to the schema is a method it must implement.
// Events go to the handler through agentv2.DispatchEvent (see handle).
var _ agentv2.ProxyToAgentControlVisitor = (*session)(nil)

// dispatch acts on one message from the proxy that is not an event.
func (s *session) dispatch(m *agentv2.ProxyToAgent) error {
	known, err := agentv2.VisitProxyToAgentControl(s, m)
	if !known {
		// A message case this version does not know (gRPC transports).
		s.stats.unknown.Add(1)
	}
	return err
}

// VisitPing answers at once.
func (s *session) VisitPing(x *agentv2.ProxyToAgent, p *agentv2.Ping) error {
	return s.send(s.srv.pong(x, p))
}

// pong is the answer to ping p, which came in x.
func (srv *Server) pong(x *agentv2.ProxyToAgent, p *agentv2.Ping) *agentv2.AgentToProxy {
	return &agentv2.AgentToProxy{EventId: x.GetEventId(), Message: &agentv2.AgentToProxy_Pong{Pong: &agentv2.Pong{
		Sequence:        p.GetSequence(),
		PingTimestampMs: p.GetTimestampMs(),
		TimestampMs:     srv.nowMs(),
	}}}
}

// VisitCancel cancels the handler contexts of one correlation id, or of
// every request when the id is empty.
func (s *session) VisitCancel(_ *agentv2.ProxyToAgent, c *agentv2.CancelRequest) error {
	code := agentwire.CodeCanceled
	if c.GetReason() == agentv2.CancelReason_CANCEL_REASON_TIMEOUT {
		code = agentwire.CodeDeadlineExceeded
	}
	cause := agentwire.Errorf(code, "agent: proxy cancelled the request (%s)", c.GetReason())
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.GetCorrelationId() == "" {
		for _, l := range s.lanes {
			l.cancel(cause)
		}
		return nil
	}
	if l := s.lanes[c.GetCorrelationId()]; l != nil {
		l.cancel(cause)
	}
	return nil
}

// VisitDrain marks the session draining, reports it and runs the handler's
// Drain hook.
func (s *session) VisitDrain(_ *agentv2.ProxyToAgent, d *agentv2.DrainRequest) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.reportNow()
	s.goHook(func() { s.srv.h.Drain(s.ctx, d) })
	return nil
}

// VisitShutdown runs the handler's Shutdown hook.
func (s *session) VisitShutdown(_ *agentv2.ProxyToAgent, r *agentv2.ShutdownRequest) error {
	s.goHook(func() { s.srv.h.Shutdown(s.ctx, r) })
	return nil
}

// VisitConfigResponse hands the proxy's answer to the requestConfigUpdate
// call waiting for it.
func (s *session) VisitConfigResponse(_ *agentv2.ProxyToAgent, r *agentv2.ConfigUpdateResponse) error {
	s.mu.Lock()
	ch := s.configWaiters[r.GetRequestId()]
	delete(s.configWaiters, r.GetRequestId())
	s.mu.Unlock()
	if ch == nil {
		s.stats.stray.Add(1)
		return nil
	}
	ch <- r
	return nil
}

// VisitHandshake fails the session: the handshake happened at accept.
func (s *session) VisitHandshake(*agentv2.ProxyToAgent, *agentv2.HandshakeRequest) error {
	return protocolError("second handshake")
}

// VisitPong counts a stray message: the agent sends no pings.
func (s *session) VisitPong(*agentv2.ProxyToAgent, *agentv2.Pong) error {
	s.stats.stray.Add(1)
	return nil
}

// VisitRegistrationResponse counts a stray message: registration precedes
// the handshake.
func (s *session) VisitRegistrationResponse(*agentv2.ProxyToAgent, *agentv2.RegistrationResponse) error {
	s.stats.stray.Add(1)
	return nil
}

// goHook runs a drain or shutdown hook without holding up the reader.
func (s *session) goHook(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("agent: handler hook panicked", "panic", r)
			}
		}()
		f()
	}()
}

// requestConfigUpdate sends req and waits for the proxy's answer.
func (s *session) requestConfigUpdate(ctx context.Context, req *agentv2.ConfigUpdateRequest) (*agentv2.ConfigUpdateResponse, error) {
	ch := make(chan *agentv2.ConfigUpdateResponse, 1)
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil, agentwire.Errorf(agentwire.CodeUnavailable, "agent: connection closed")
	}
	if req.RequestId == "" {
		s.configSeq++
		req.RequestId = "agent-" + strconv.FormatUint(s.configSeq, 10)
	}
	id := req.RequestId
	if _, dup := s.configWaiters[id]; dup {
		s.mu.Unlock()
		return nil, agentwire.Errorf(agentwire.CodeAlreadyExists, "agent: config update %q is already waiting", id)
	}
	s.configWaiters[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.configWaiters[id] == ch {
			delete(s.configWaiters, id)
		}
		s.mu.Unlock()
	}()
	if req.TimestampMs == 0 {
		req.TimestampMs = s.srv.nowMs()
	}
	if err := s.st.Send(ctx, &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_ConfigUpdate{ConfigUpdate: req}}); err != nil {
		return nil, err
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
		return nil, agentwire.WrapContextError(ctx.Err())
	case <-s.ctx.Done():
		return nil, agentwire.Errorf(agentwire.CodeUnavailable, "agent: connection closed before the proxy answered")
	}
}
