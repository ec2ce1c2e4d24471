package failover

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// cancelTimeout bounds the cancel sent to a connection a request leaves.
const cancelTimeout = time.Second

// cancelReason goes with those cancels.
const cancelReason = agentv2.CancelReason_CANCEL_REASON_MANUAL

// errInconsistent: a replayed event was answered otherwise than the
// caller was.
var errInconsistent = errors.New("failover: replayed event answered differently")

// failover moves request r, whose event c failed with cause, to another
// connection of its agent or to the fallback agent, and returns the answer
// to c there. gen is r's failover count when c was sent: if another event
// moved the request meanwhile, c just follows it. When it refuses or every
// target fails it returns cause, and r's later events fail.
func (ic *Interceptor) failover(ctx context.Context, next pool.SendFunc, c *pool.Call, t *table, r *request, gen int, cause error) (*agentv2.AgentResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen != gen {
		if r.dead {
			return nil, cause
		}
		c.AgentID = r.agentID
		return next(ctx, c)
	}
	from := r.agentID
	r.gen++
	outcome := refusal(r, c.Type)
	if outcome == "" && !ic.budget.spend() {
		outcome = NoBudget
	}
	if outcome == "" {
		ic.counts.add(from, Attempted)
		resp, err := ic.move(ctx, next, c, t, r)
		if err == nil {
			ic.counts.add(from, Succeeded)
			return resp, nil
		}
		outcome = Failed
		if errors.Is(err, errInconsistent) {
			outcome = Inconsistent
		}
	}
	ic.counts.add(from, outcome)
	r.dead = true
	t.giveUp(r, outcome)
	return nil, cause
}

// move replays r on the targets in turn: the other connections of its
// agent, then the fallback agent.
func (ic *Interceptor) move(ctx context.Context, next pool.SendFunc, c *pool.Call, t *table, r *request) (*agentv2.AgentResponse, error) {
	from := r.agentID
	// The old connection abandons the request (if it still can), and its
	// pin goes.
	ic.cancel(ctx, from, c.CorrelationID)
	targets := []string{from}
	if fb := t.fallback; fb != "" && fb != from {
		targets = append(targets, fb)
	}
	var err error
	for _, target := range targets {
		exclude := ""
		if target == from {
			exclude = r.connID
		}
		var resp *agentv2.AgentResponse
		if resp, err = ic.replay(ctx, next, c, r, target, exclude); err == nil {
			r.agentID, r.connID = target, c.ConnID
			return resp, nil
		}
		ic.cancel(ctx, target, c.CorrelationID)
		if errors.Is(err, errInconsistent) || !failsOver(ctx, err) {
			break
		}
	}
	return nil, err
}

// refusal says why r cannot fail over with an event of kind, "" if it can.
func refusal(r *request, kind agentv2.EventType) Outcome {
	switch {
	case r.refused != "":
		return r.refused
	case r.gone:
		return Expired
	case !replayable(kind):
		return UnsafeEvent
	}
	return ""
}

// replay sends r's kept events to agent target (balanced away from
// connection exclude, pinning the one they go to), checks that each is
// answered as the caller was, then sends c there. c's pipeline fields are
// those of its send to target.
func (ic *Interceptor) replay(ctx context.Context, next pool.SendFunc, c *pool.Call, r *request, target, exclude string) (*agentv2.AgentResponse, error) {
	rr := &pool.Reroute{Pin: pool.PinAgain, Exclude: exclude}
	for i := range r.events {
		ev, want, err := r.event(i)
		if err != nil {
			return nil, err
		}
		markReplay(ev, r.gen)
		sub := pool.Call{AgentID: target, CorrelationID: c.CorrelationID, Type: ev.EventType(), Event: ev}
		if i == 0 {
			sub.Reroute = rr
		}
		resp, err := next(ctx, &sub)
		if err != nil {
			return nil, err
		}
		if !consistent(want, resp) {
			return nil, errInconsistent
		}
	}
	sub := *c
	sub.AgentID = target
	if len(r.events) == 0 {
		sub.Reroute = rr
		// The failed event starts the request: the replayed copy carries
		// the marker, the caller's event stays as it was.
		if md := c.Event.GetRequestHeaders().GetMetadata(); md != nil {
			ev := c.Event.CloneVT()
			markReplay(ev, r.gen)
			sub.Event = ev
		}
	}
	resp, err := next(ctx, &sub)
	sub.Reroute, sub.Event = c.Reroute, c.Event
	*c = sub
	return resp, err
}

// markReplay stamps a replayed request's headers with its failover count
// (RequestMetadata.replay_attempt), so that the agent can tell.
func markReplay(ev *agentv2.ProxyToAgent, n int) {
	if md := ev.GetRequestHeaders().GetMetadata(); md != nil {
		md.ReplayAttempt = uint32(n)
	}
}

// cancel drops request corr's pin on agentID, telling its connection to
// abandon it if the connection is still there; best effort.
func (ic *Interceptor) cancel(ctx context.Context, agentID, corr string) {
	p := ic.pool.Load()
	if p == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	_ = p.Cancel(cctx, agentID, &agentv2.CancelRequest{CorrelationId: corr, Reason: cancelReason})
	cancel()
}

// consistent reports whether a replayed event's answer b is the one the
// caller got, a: the same decision, needs_more and header mutations.
// Audit, timing and cache directives may differ.
func consistent(a, b *agentv2.AgentResponse) bool {
	if a.GetNeedsMore() != b.GetNeedsMore() || !sameOps(a.GetRequestHeaders(), b.GetRequestHeaders()) ||
		!sameOps(a.GetResponseHeaders(), b.GetResponseHeaders()) {
		return false
	}
	switch {
	case a.GetAllow() != nil:
		return b.GetAllow() != nil
	case a.GetBlock() != nil:
		return proto.Equal(a.GetBlock(), b.GetBlock())
	case a.GetRedirect() != nil:
		return proto.Equal(a.GetRedirect(), b.GetRedirect())
	case a.GetChallenge() != nil:
		return proto.Equal(a.GetChallenge(), b.GetChallenge())
	}
	return b.GetDecision() == nil
}

func sameOps(a, b []*agentv2.HeaderOp) bool {
	return slices.EqualFunc(a, b, func(x, y *agentv2.HeaderOp) bool { return proto.Equal(x, y) })
}
