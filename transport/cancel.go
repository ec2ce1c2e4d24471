package transport

import (
	"context"
	"math"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Cancel implements Conn.
func (s *session) Cancel(ctx context.Context, req *agentv2.CancelRequest) error {
	if req == nil {
		return agentwire.Errorf(agentwire.CodeInvalidArgument, "transport: nil cancel request")
	}
	if req.TimestampMs == 0 {
		req = req.CloneVT()
		req.TimestampMs = uint64(s.cfg.now().UnixMilli())
	}
	correlationID := req.CorrelationId
	msg := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Cancel{Cancel: req}}
	cerr := agentwire.Errorf(agentwire.CodeCanceled, "request cancelled: %s", req.Reason)
	if s.byCorr != nil {
		// Under orderMu the queues and the wire agree: the notice cancels
		// exactly the events queued now.
		s.orderMu.Lock()
		defer s.orderMu.Unlock()
	}
	// Fail the waiters first: once the notice is out, the agent's own
	// (error) answers may race in, and the caller must see the cancel.
	s.failCancelled(correlationID, math.MaxUint64, cerr, true)
	err := s.w.send(ctx, msg)
	// A Send given its id before the notice was queued may be ahead of it
	// on the wire, and the agent may drop it: fail those too. Later ids
	// follow the notice, and the agent takes them as new.
	s.failCancelled(correlationID, s.nextID.Load(), cerr, false)
	return s.sendErr(err)
}

// failCancelled fails with err the calls of correlationID (all for "") up
// to event id maxID, whose answers count as late, and may lift its pauses.
func (s *session) failCancelled(correlationID string, maxID uint64, err error, unpause bool) {
	var victims []*call
	s.mu.Lock()
	if s.byCorr != nil {
		victims = s.cancelQueueLocked(correlationID)
	} else {
		victims = s.cancelPendingLocked(correlationID, maxID)
	}
	if unpause {
		s.pauses.Lift(correlationID)
		s.pausesChangedLocked()
	}
	s.mu.Unlock()
	for _, c := range victims {
		s.deliver(c, result{err: err})
	}
}
