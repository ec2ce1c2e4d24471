package httpguard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// Errors a guarded body returns to the handler reading or writing it.
var (
	// ErrBlocked: an agent ended the request; the guard answers the client.
	ErrBlocked = errors.New("httpguard: request ended by an agent")
	// ErrBodyLimit: an agent answered needs_more until its body limit.
	ErrBodyLimit = errors.New("httpguard: agent needs more than its body limit")
	// errFinished: the exchange ended while its body was still being read.
	errFinished = errors.New("httpguard: request finished")
)

// exchange is the state of one guarded request. Request body events may
// be sent from the goroutine of the handler's transport, concurrently
// with response events: mu guards what they share.
//
// The exchange is the context next's request carries: the request's own,
// which ends when the client goes, with the exchange as a value (see
// [AuditFrom]), at no allocation.
type exchange struct {
	context.Context
	g    *Guard
	rt   *route
	corr string
	// session is the sticky session of an upgrade (its correlation id):
	// the upgraded stream stays on the connections that saw its headers.
	session string
	start   time.Time
	w       writer // the ResponseWriter next gets

	received, sent atomic.Int64 // body bytes
	// wanted is the events some agent receives (see agentState.events).
	wanted Events

	mu          sync.Mutex // guards the following
	state       []agentState
	stateBuf    [4]agentState // state's array for short chains
	audit       Audit
	final       *agentv2.AgentResponse // the answer that ended the request
	reqOps      []*agentv2.HeaderOp
	respOps     []*agentv2.HeaderOp
	routing     map[string]string    // the agents' routing metadata
	reason      agentv2.CancelReason // why the request ended early
	status      int                  // sent to the client
	upstreamErr error
	done        bool
}

// agentState is one agent's part of an exchange.
type agentState struct {
	events   Events         // what it receives: configured and declared
	open     bool           // the agent holds the request
	out      bool           // it gets no more events (failed open)
	needs    [numKinds]bool // it answered needs_more for the body of kind
	req, rsp chunkState
}

// chunkState counts the chunks of one body sent to one agent.
type chunkState struct {
	index  uint32
	offset int64
	seen   int // bytes of the last chunk sent (up to the agent's limit)
	last   bool
}

// ask sends the event build makes for each agent of the route that takes
// events of kind k, group by group, and combines the answers. build gets
// alone=false when the agent shares its group with others; it returns nil
// to skip the agent.
func (x *exchange) ask(k kind, build func(i int, alone bool) *agentv2.ProxyToAgent) {
	x.askEdit(k, nil, build)
}

// askEdit is ask for a body chunk or a frame: the agents' edit of it goes
// to e.
func (x *exchange) askEdit(k kind, e *edit, build func(i int, alone bool) *agentv2.ProxyToAgent) {
	for _, grp := range x.rt.groups[k] {
		if x.stopped() {
			return
		}
		if len(grp) == 1 {
			i := grp[0]
			if !x.takes(i, k) {
				continue
			}
			ev := build(i, true)
			if ev == nil {
				continue
			}
			resp, err := x.send(x.Context, i, k, ev)
			x.take(k, i, resp, err, false, e)
			continue
		}
		x.askGroup(k, grp, e, build)
	}
}

// result is one parallel agent's answer.
type result struct {
	i    int
	resp *agentv2.AgentResponse
	err  error
}

// askGroup asks a group's agents at once. The first terminal answer to
// come cancels the others (CANCEL_REASON_BLOCKED_BY_AGENT); the answers
// are then combined in chain order.
func (x *exchange) askGroup(k kind, grp []int, e *edit, build func(i int, alone bool) *agentv2.ProxyToAgent) {
	type member struct {
		i      int
		ctx    context.Context
		cancel context.CancelFunc
	}
	results := make(chan result, len(grp))
	var members []member
	for _, i := range grp {
		if !x.takes(i, k) {
			continue
		}
		ev := build(i, false)
		if ev == nil {
			continue
		}
		ctx, cancel := context.WithCancel(x.Context)
		members = append(members, member{i, ctx, cancel})
		go func() {
			resp, err := x.send(ctx, i, k, ev)
			results <- result{i, resp, err}
		}()
	}
	got := make([]result, 0, len(members))
	cancelled := make(map[int]bool)
	for range members {
		res := <-results
		got = append(got, res)
		if !isTerminal(res.resp) && !x.failsClosed(res.i, res.err) || len(cancelled) > 0 {
			continue
		}
		req := x.cancelRequest(agentv2.CancelReason_CANCEL_REASON_BLOCKED_BY_AGENT, x.rt.agents[res.i].id)
		for _, m := range members {
			if m.i != res.i && !answered(got, m.i) {
				cancelled[m.i] = true
				_ = x.g.pool.Cancel(x.g.bg, x.rt.agents[m.i].id, req)
				m.cancel()
			}
		}
	}
	for _, m := range members {
		m.cancel()
		for _, res := range got {
			if res.i == m.i {
				x.take(k, res.i, res.resp, res.err, cancelled[res.i], e)
			}
		}
	}
}

// cancelRequest is the cancel of the exchange's request; a block names
// the agent that blocked.
func (x *exchange) cancelRequest(reason agentv2.CancelReason, blocker string) *agentv2.CancelRequest {
	req := &agentv2.CancelRequest{CorrelationId: x.corr, Reason: reason, TimestampMs: uint64(x.g.cfg.now().UnixMilli())}
	if reason == agentv2.CancelReason_CANCEL_REASON_BLOCKED_BY_AGENT && blocker != "" {
		req.BlockingAgentId = proto.String(blocker)
	}
	return req
}

func answered(got []result, i int) bool {
	for _, r := range got {
		if r.i == i {
			return true
		}
	}
	return false
}

// send sends ev to agent i with the agent's timeout.
func (x *exchange) send(ctx context.Context, i int, k kind, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	a := &x.rt.agents[i]
	if k == kindRequestHeaders {
		x.mu.Lock()
		x.state[i].open = true
		x.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if x.session != "" {
		return x.g.pool.SendSession(ctx, a.id, x.session, ev)
	}
	return x.g.pool.Send(ctx, a.id, ev)
}

// take folds agent i's answer to an event of kind k into the exchange,
// and its edit of a chunk or frame into e. cancelled says the guard
// cancelled the call itself.
func (x *exchange) take(k kind, i int, resp *agentv2.AgentResponse, err error, cancelled bool, e *edit) {
	x.mu.Lock()
	defer x.mu.Unlock()
	st, a := &x.state[i], &x.rt.agents[i]
	switch {
	case cancelled:
		st.open = false // the cancel ended it at the agent
		return
	case x.done:
		return
	case err != nil && x.Err() != nil:
		x.reason = agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT
		return
	case err == nil && resp.GetNeedsMore() && k.isBody() && lastChunk(st, k):
		err = fmt.Errorf("needs_more on the last chunk of the body")
	}
	if err == nil {
		err = x.editLocked(k, i, resp, e)
	}
	if err != nil {
		x.failLocked(i, err, a.failStatus)
		return
	}
	mergeAudit(&x.audit, resp.GetAudit())
	if isTerminal(resp) {
		st.open = false // the pool ended the request at the agent
		x.endLocked(i, resp, agentv2.CancelReason_CANCEL_REASON_BLOCKED_BY_AGENT)
		return
	}
	if body := k.body(); body != numKinds && st.events&(Events(1)<<body) != 0 {
		st.needs[body] = resp.GetNeedsMore()
	}
	if k == kindRequestHeaders {
		x.reqOps = append(x.reqOps, resp.GetRequestHeaders()...)
	}
	x.respOps = append(x.respOps, resp.GetResponseHeaders()...)
}

// failLocked applies agent i's failure mode; status answers the client
// when it fails closed.
func (x *exchange) failLocked(i int, err error, status int) {
	a := &x.rt.agents[i]
	st := &x.state[i]
	st.needs = [numKinds]bool{}
	if a.failOpen {
		a.stats.failedOpen.Add(1)
		st.out = true
		x.audit.FailedOpen = append(x.audit.FailedOpen, a.id)
		x.g.cfg.logger.Warn("httpguard: agent failed; failing open", "agent", a.id, "route", x.rt.id,
			"correlation_id", x.corr, "error", err)
		return
	}
	a.stats.failedClosed.Add(1)
	reason := agentv2.CancelReason_CANCEL_REASON_UNSPECIFIED
	if agentwire.CodeOf(err) == agentwire.CodeDeadlineExceeded {
		reason = agentv2.CancelReason_CANCEL_REASON_TIMEOUT
	}
	x.g.cfg.logger.Warn("httpguard: agent failed; failing closed", "agent", a.id, "route", x.rt.id,
		"correlation_id", x.corr, "status", status, "error", err)
	x.endLocked(i, agent.Block(uint32(status), http.StatusText(status)+"\n"), reason)
}

// endLocked records the answer that ends the request: the first one wins.
func (x *exchange) endLocked(i int, resp *agentv2.AgentResponse, reason agentv2.CancelReason) {
	if x.final != nil {
		return
	}
	x.final, x.reason = resp, reason
	x.audit.DecidedBy = x.rt.agents[i].id
}

// failsClosed reports whether err from agent i ends the request.
func (x *exchange) failsClosed(i int, err error) bool {
	return err != nil && !x.rt.agents[i].failOpen && x.Err() == nil
}

// clientGone records that the client went away.
func (x *exchange) clientGone() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.final == nil && x.reason == agentv2.CancelReason_CANCEL_REASON_UNSPECIFIED {
		x.reason = agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT
	}
}

// overLimit fails every agent that still needs more of body kind k but has
// inspected all it may; it reports whether the request ended.
func (x *exchange) overLimit(k kind) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range x.state {
		st := &x.state[i]
		if st.needs[k] && st.chunks(k).offset >= x.rt.agents[i].maxBody {
			x.failLocked(i, ErrBodyLimit, http.StatusRequestEntityTooLarge)
		}
	}
	return x.final != nil
}

// needy reports whether an agent still needs more of body kind k.
func (x *exchange) needy(k kind) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range x.state {
		if x.state[i].needs[k] && !x.state[i].out {
			return true
		}
	}
	return false
}

// takes reports whether agent i takes events of kind k now.
func (x *exchange) takes(i int, k kind) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	st := &x.state[i]
	return !st.out && !x.done && st.events&(Events(1)<<k) != 0
}

// wants reports whether any agent receives events of kind k.
func (x *exchange) wants(k kind) bool { return x.wanted&(Events(1)<<k) != 0 }

// stopped reports whether the request has ended: decided by an agent, or
// its client gone.
func (x *exchange) stopped() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.final != nil || x.reason != agentv2.CancelReason_CANCEL_REASON_UNSPECIFIED || x.done
}

// takeOps returns the header operations collected for kind k (request or
// response headers) and forgets them.
func (x *exchange) takeOps(k kind) []*agentv2.HeaderOp {
	x.mu.Lock()
	defer x.mu.Unlock()
	var ops []*agentv2.HeaderOp
	if k == kindRequestHeaders {
		ops, x.reqOps = x.reqOps, nil
	} else {
		ops, x.respOps = x.respOps, nil
	}
	return ops
}

// decision returns the answer that ended the request, if any.
func (x *exchange) decision() *agentv2.AgentResponse {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.final
}

// respond answers the client with the decision that ended the request
// before next was called.
func (x *exchange) respond(w http.ResponseWriter, r *http.Request) {
	if resp := x.decision(); resp != nil && x.Err() == nil {
		x.setStatus(x.answer(w, r, resp))
	}
}

// answer writes the decision resp, with the audit header if configured.
func (x *exchange) answer(w http.ResponseWriter, r *http.Request, resp *agentv2.AgentResponse) int {
	if name := x.g.cfg.auditHdr; name != "" {
		x.mu.Lock()
		tags := strings.Join(x.audit.Tags, ",")
		x.mu.Unlock()
		if tags != "" {
			w.Header().Set(name, tags)
		}
	}
	return writeDecision(w, r, resp, x.g.cfg.challenge)
}

func (x *exchange) setStatus(status int) {
	x.mu.Lock()
	x.status = status
	x.mu.Unlock()
}

func (k kind) isBody() bool { return k == kindRequestBody || k == kindResponseBody }

// body returns the body kind an event of kind k belongs to or precedes
// (numKinds: none).
func (k kind) body() kind {
	switch k {
	case kindRequestHeaders, kindRequestBody:
		return kindRequestBody
	case kindResponseHeaders, kindResponseBody:
		return kindResponseBody
	}
	return numKinds
}

func (st *agentState) chunks(k kind) *chunkState {
	if k == kindRequestBody {
		return &st.req
	}
	return &st.rsp
}

func lastChunk(st *agentState, k kind) bool { return st.chunks(k).last }

func isTerminal(resp *agentv2.AgentResponse) bool {
	switch resp.GetDecision().(type) {
	case *agentv2.AgentResponse_Block, *agentv2.AgentResponse_Redirect, *agentv2.AgentResponse_Challenge:
		return true
	}
	return false
}

func isUnknownRequest(err error) bool { return errors.Is(err, pool.ErrUnknownRequest) }

// Value implements context.Context: the exchange is its own value.
func (x *exchange) Value(key any) any {
	if key == (exchangeKey{}) {
		return x
	}
	return x.Context.Value(key)
}
