package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// A session acts on what its agent sends through the generated visitor, so
// a case added to AgentToProxy is a method the session must implement.
var _ agentv2.AgentToProxyVisitor = (*session)(nil)

// maxBackground bounds the goroutines answering an agent's pings and
// config-update requests at once: each may wait for room on a connection
// the agent does not read, and a ping flood must not pile them up.
const maxBackground = 64

// readLoop receives until the wire fails, dispatching every message.
func (s *session) readLoop() {
	msg := &agentv2.AgentToProxy{}
	// While frames are buffered, the reader holds the wire: the senders it
	// wakes send again at once, and their events should leave together.
	held := false
	defer func() {
		if held {
			s.w.releaseBatch()
		}
	}()
	for {
		if held && !s.w.buffered() {
			s.w.releaseBatch()
			held = false
		}
		if err := s.w.recv(msg); err != nil {
			if errors.Is(err, codec.ErrUnknownFrameType) {
				s.unknownFrames.Add(1)
				continue
			}
			s.fail(recvErr(err))
			return
		}
		s.recvd.n.Add(1)
		if !held {
			s.w.holdBatch()
			held = true
		}
		if err := s.dispatch(msg); err != nil {
			s.fail(err)
			return
		}
	}
}

// recvErr is the connection's error for a failed receive: a protocol
// violation for a broken frame, the peer gone otherwise.
func recvErr(err error) error {
	if errors.Is(err, codec.ErrMalformed) || errors.Is(err, codec.ErrZeroLength) || errors.Is(err, codec.ErrFrameTooLarge) {
		return agentwire.NewError(agentwire.CodeInternal, fmt.Errorf("%w: %w", ErrProtocol, err))
	}
	return agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("%w: %w", ErrPeerGone, err))
}

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

// VisitResponse hands a response to the call it answers (see matching.go),
// and fails the connection if the agent broke the matching rules.
func (s *session) VisitResponse(x *agentv2.AgentToProxy, resp *agentv2.AgentResponse) error {
	s.mu.Lock()
	c, v, err := s.matchLocked(x.GetEventId(), resp.GetCorrelationId())
	s.mu.Unlock()
	switch v {
	case late:
		s.lateResponses.Add(1)
	case duplicate:
		s.duplicateResponses.Add(1)
	case violation:
		s.fail(err)
	}
	if v != matched {
		return nil
	}
	// Hold the wire until the woken Send has its result: it often sends
	// again at once, and such events then leave in one write.
	s.w.holdBatch()
	switch st := resp.GetError(); {
	case st != nil:
		s.deliver(c, result{err: agentwire.NewWireError(agentwire.Code(st.GetCode()), st.GetMessage()), held: true})
	case !decided(resp):
		s.deliver(c, result{err: noDecisionErr(c.id, c.corr), held: true})
	default:
		s.deliver(c, result{resp: resp, held: true})
	}
	return nil
}

// VisitHealth records the agent's health and reports it.
func (s *session) VisitHealth(_ *agentv2.AgentToProxy, h *agentv2.HealthStatus) error {
	s.mu.Lock()
	s.health, s.load, s.healthAt = h.GetState(), h.GetLoad(), s.cfg.now()
	_, st := s.stateChangedLocked()
	s.mu.Unlock()
	if f := s.cfg.onHealth; f != nil {
		f(h)
	}
	s.pushStatus(st)
	return nil
}

// VisitMetrics hands a metrics report to the WithOnMetrics callback.
func (s *session) VisitMetrics(_ *agentv2.AgentToProxy, m *agentv2.MetricsReport) error {
	if f := s.cfg.onMetrics; f != nil {
		f(m)
	}
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

// VisitHandshake fails the connection: the handshake happened at dial.
func (s *session) VisitHandshake(*agentv2.AgentToProxy, *agentv2.HandshakeResponse) error {
	return agentwire.Errorf(agentwire.CodeInternal, "%w: second handshake response", ErrProtocol)
}

// VisitRegistration fails the connection: registration precedes the
// handshake.
func (s *session) VisitRegistration(*agentv2.AgentToProxy, *agentv2.RegistrationRequest) error {
	return agentwire.Errorf(agentwire.CodeInternal, "%w: registration after the handshake", ErrProtocol)
}

// goBackground runs f on a goroutine Close waits for. It drops f (what
// names it in the log) while maxBackground run.
func (s *session) goBackground(what string, f func(ctx context.Context)) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	if s.background >= maxBackground {
		s.mu.Unlock()
		if s.floodLogged.CompareAndSwap(false, true) {
			s.log(slog.LevelWarn, "agent sends pings or config updates faster than it reads the answers; dropping some",
				slog.String("dropped", what))
		}
		return
	}
	s.background++
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		f(s.bg)
		s.mu.Lock()
		s.background--
		s.mu.Unlock()
	}()
}
