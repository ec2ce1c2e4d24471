package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// handle runs event m of lane l, answers it and returns how long the
// handler ran. The answer is encoded before reply returns and handlers
// must not keep events, so m goes back to the stream. A reader running the
// event itself passes its burst stream: the answer waits for ReleaseHeld.
func (s *session) handle(l *lane, m *agentv2.ProxyToAgent, held burstStream) time.Duration {
	defer s.st.Release(m)
	var resp *agentv2.AgentResponse
	var err error
	var d time.Duration
	if l.Err() != nil {
		err = context.Cause(l) // cancelled while queued: not worth running
	} else {
		start := time.Since(s.srv.epoch)
		resp, err = s.srv.call(l, m)
		d = time.Since(s.srv.epoch) - start
		s.stats.record(d)
	}
	if err != nil && agentwire.CodeOf(err) == agentwire.CodeDeadlineExceeded {
		s.stats.timedOut.Add(1)
	}
	if held == nil {
		// The answer leaves now, before finishLocked: held answers leave
		// after it.
		s.replying()
	}
	s.reply(m.EventId, l.cid, resp, err, held)
	return d
}

// reply sends the answer to event id: at once when it is the only event
// pending, batched with the answers right behind it otherwise.
func (s *session) reply(id uint64, cid string, resp *agentv2.AgentResponse, err error, held burstStream) {
	// Every stream encodes m before its send returns: r is pooled again
	// right after.
	r := replyPool.Get().(*replyEnvelope)
	defer r.release()
	m := r.fill(id, cid, resp, err)
	if held != nil {
		_ = held.SendHeld(s.ctx, m)
		return
	}
	if bs, ok := s.st.(batchSender); ok {
		s.mu.Lock()
		busy := s.pending > 1
		s.mu.Unlock()
		if busy {
			_ = bs.SendBatched(s.ctx, m)
			return
		}
	}
	_ = s.send(m)
}

// replyEnvelope holds an answer's envelope, oneof wrapper and response in
// one allocation.
type replyEnvelope struct {
	env  agentv2.AgentToProxy
	wrap agentv2.AgentToProxy_Response
	resp agentv2.AgentResponse
}

var replyPool = sync.Pool{New: func() any { return new(replyEnvelope) }}

// release clears r, dropping the handler's response, and pools it.
func (r *replyEnvelope) release() {
	*r = replyEnvelope{}
	replyPool.Put(r)
}

// newReply builds the answer to an event in an envelope of its own.
func newReply(id uint64, cid string, resp *agentv2.AgentResponse, err error) *agentv2.AgentToProxy {
	return new(replyEnvelope).fill(id, cid, resp, err)
}

// fill builds the answer to an event with what the SDK owns: the event and
// correlation ids, allow for a nil response, the error status. The
// handler's response is copied, never written to: a handler may return one
// constant answer for many events.
func (r *replyEnvelope) fill(id uint64, cid string, resp *agentv2.AgentResponse, err error) *agentv2.AgentToProxy {
	switch {
	case err != nil:
		r.resp.Error = statusOf(err)
	case resp == nil:
		r.resp.Decision = allowDecision
	default:
		copyResponse(&r.resp, resp)
	}
	r.resp.CorrelationId = cid
	r.wrap.Response = &r.resp
	r.env.EventId = id
	r.env.Message = &r.wrap
	return &r.env
}

// copyResponse copies src's fields into dst, a cleared response: a shallow
// copy (TestCopyResponseCopiesEveryField checks it against the schema).
func copyResponse(dst, src *agentv2.AgentResponse) {
	dst.Decision = src.Decision
	dst.RequestHeaders = src.RequestHeaders
	dst.ResponseHeaders = src.ResponseHeaders
	dst.Audit = src.Audit
	dst.ProcessingTimeMs = src.ProcessingTimeMs
	dst.NeedsMore = src.NeedsMore
	dst.Error = src.Error
	dst.Cache = src.Cache
	dst.RequestBodyMutation = src.RequestBodyMutation
	dst.ResponseBodyMutation = src.ResponseBodyMutation
	dst.WebsocketDecision = src.WebsocketDecision
	dst.RoutingMetadata = src.RoutingMetadata
	if u := src.ProtoReflect().GetUnknown(); len(u) > 0 {
		dst.ProtoReflect().SetUnknown(u)
	}
}

// allowDecision is the decision of nil responses, shared: nothing changes it.
var allowDecision = &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}

// statusOf converts a handler error into the Status sent to the proxy.
func statusOf(err error) *agentv2.Status {
	msg := err.Error()
	if e := (*agentwire.Error)(nil); errors.As(err, &e) && e.Message() != "" {
		msg = e.Message()
	}
	return &agentv2.Status{Code: uint32(agentwire.CodeOf(err)), Message: msg}
}

// callHandler runs the handler method for event m, turning a panic into an
// internal error.
func (srv *Server) callHandler(ctx context.Context, m *agentv2.ProxyToAgent) (resp *agentv2.AgentResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			srv.cfg.logger.Error("agent: handler panicked", "panic", r, "event_id", m.EventId)
			resp, err = nil, agentwire.Errorf(agentwire.CodeInternal, "agent: handler panicked: %v", r)
		}
	}()
	resp, ok, err := agentv2.DispatchEvent(ctx, srv.events, m)
	if !ok {
		return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "agent: %T is not an event", m.Message)
	}
	return resp, err
}
