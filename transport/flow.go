package transport

import (
	"context"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

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
	if changed {
		s.pushStatus(st)
	}
	return nil
}

// pausesChangedLocked updates anyPause; s.mu is held.
func (s *session) pausesChangedLocked() { s.anyPause.Store(s.pauses.Any()) }

// Paused implements Conn.
func (s *session) Paused(correlationID string) bool {
	if !s.anyPause.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pauses.Paused(correlationID)
}

// WaitResume implements Conn.
func (s *session) WaitResume(ctx context.Context, correlationID string) error {
	for {
		s.mu.Lock()
		err, paused, ch := s.err, s.pauses.Paused(correlationID), s.resume
		s.mu.Unlock()
		if err != nil || !paused {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return agentwire.WrapContextError(ctx.Err())
		}
	}
}
