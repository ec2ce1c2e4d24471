package wire

import agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"

// Flow control: an agent that falls behind sends PAUSE, and RESUME once it
// has caught up. A signal without a correlation id is about the whole
// connection; one with an id, about that request only. The agent decides
// when with a [Hysteresis] and sends [FlowSignal]; the proxy keeps what is
// paused in a [PauseSet].

// MaxPausedRequests bounds the requests a proxy keeps paused on one
// connection: PAUSEs for more are ignored, so an agent cannot make the set
// grow without bound.
const MaxPausedRequests = 4096

// FlowSignal returns the message that pauses (pause true) or resumes the
// connection (correlationID nil) or the request correlationID names.
func FlowSignal(correlationID *string, pause bool, timestampMs uint64) *agentv2.AgentToProxy {
	action := agentv2.FlowAction_FLOW_ACTION_RESUME
	if pause {
		action = agentv2.FlowAction_FLOW_ACTION_PAUSE
	}
	return &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_FlowControl{FlowControl: &agentv2.FlowControlSignal{
		CorrelationId: correlationID,
		Action:        action,
		TimestampMs:   timestampMs,
	}}}
}

// Hysteresis is when an agent wants a pause: from the moment what waits
// reaches pauseAt until it is down to resumeAt. The gap keeps a load near
// the limit from sending a PAUSE and a RESUME per event.
type Hysteresis struct{ pauseAt, resumeAt int }

// ConnectionHysteresis pauses a connection at limit events pending and
// resumes it at three quarters of that.
func ConnectionHysteresis(limit int) Hysteresis {
	return Hysteresis{pauseAt: limit, resumeAt: limit * 3 / 4}
}

// RequestHysteresis pauses a request at limit queued events and resumes it
// at half of that; with limit 0, never.
func RequestHysteresis(limit int) Hysteresis {
	return Hysteresis{pauseAt: limit, resumeAt: limit / 2}
}

// Next returns whether a pause is wanted with n waiting, given whether one
// is wanted now (paused).
func (h Hysteresis) Next(paused bool, n int) bool {
	switch {
	case h.pauseAt <= 0:
		return false
	case !paused && n >= h.pauseAt:
		return true
	case paused && n <= h.resumeAt:
		return false
	}
	return paused
}

// PauseSet is what an agent has paused on one connection, as the proxy
// keeps it: the whole connection, and single requests. The zero value has
// nothing paused. Not safe for concurrent use.
type PauseSet struct {
	conn bool
	reqs map[string]struct{}
}

// Apply records sig and returns its action, or FLOW_ACTION_UNSPECIFIED for
// an action this version does not know, which changes nothing.
func (p *PauseSet) Apply(sig *agentv2.FlowControlSignal) agentv2.FlowAction {
	switch sig.GetAction() {
	case agentv2.FlowAction_FLOW_ACTION_PAUSE:
		if sig.CorrelationId == nil {
			p.conn = true
		} else if len(p.reqs) < MaxPausedRequests {
			if p.reqs == nil {
				p.reqs = make(map[string]struct{})
			}
			p.reqs[*sig.CorrelationId] = struct{}{}
		}
		return agentv2.FlowAction_FLOW_ACTION_PAUSE
	case agentv2.FlowAction_FLOW_ACTION_RESUME:
		if sig.CorrelationId == nil {
			p.conn = false
		} else {
			delete(p.reqs, *sig.CorrelationId)
		}
		return agentv2.FlowAction_FLOW_ACTION_RESUME
	}
	return agentv2.FlowAction_FLOW_ACTION_UNSPECIFIED
}

// Connection reports whether the whole connection is paused.
func (p *PauseSet) Connection() bool { return p.conn }

// Any reports whether the connection or any request is paused.
func (p *PauseSet) Any() bool { return p.conn || len(p.reqs) > 0 }

// Paused reports whether an event of request corr must wait: the
// connection is paused, or corr is ("" names no request).
func (p *PauseSet) Paused(corr string) bool {
	if p.conn {
		return true
	}
	if len(p.reqs) == 0 || corr == "" {
		return false
	}
	_, ok := p.reqs[corr]
	return ok
}

// Lift lifts the pause of request corr, which ended (was cancelled), or of
// every request for "". A connection-wide pause stays: only the agent
// lifts it.
func (p *PauseSet) Lift(corr string) {
	if corr == "" {
		clear(p.reqs)
	} else {
		delete(p.reqs, corr)
	}
}
