package transport

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// call is one Send waiting for its decision. Calls are pooled.
type call struct {
	id   uint64
	corr string
	ch   chan result // capacity 1; exactly one result per call
	// deadline: when sweep fails the call, as time since session.base.
	deadline time.Duration
	// prev and next link the pending calls in send order (pendingTable).
	prev, next *call
	// done is the Send's ctx.Done(); while pending, watch is the ctxWatch
	// the Send relies on, if any, and ctx its context. Under mu.
	done  <-chan struct{}
	watch *ctxWatch
	ctx   context.Context
	// placeholder stands in for a call that gave up (see matching.go).
	placeholder bool
	// async, for a call made by Go, takes the result instead of ch; kind
	// and chunk are what checking its answer's edits needs of its event.
	async func(*agentv2.AgentResponse, error)
	kind  agentv2.EventType
	chunk uint32
}

type result struct {
	resp *agentv2.AgentResponse
	err  error
	// held: the reader took a wire hold (wire.holdBatch) for this result.
	held bool
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan result, 1)} }}

// putCall pools c, which no table holds, dropping its context.
func putCall(c *call) {
	c.done, c.watch, c.ctx = nil, nil, nil
	callPool.Put(c)
}

// Send implements Conn.
func (s *session) Send(ctx context.Context, event *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	corr, ok := event.EventCorrelationID()
	if !ok {
		return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "%w: %v", ErrNotEvent, event.FrameType())
	}
	c := callPool.Get().(*call)
	c.id, c.corr, c.done, c.deadline = s.nextID.Add(1), corr, ctx.Done(), 0
	if d := s.cfg.callTimeout; d > 0 {
		c.deadline = time.Since(s.base) + d // unless ctx ends first
	}
	event.EventId = c.id

	ordered := s.byCorr != nil
	if ordered {
		s.orderMu.Lock()
	}
	busy, watched, err := s.addCall(ctx, c, false)
	if err != nil {
		if ordered {
			s.orderMu.Unlock()
		}
		putCall(c)
		return nil, err
	}
	// With others in flight, the event shares the writer's next system call.
	if busy {
		err = s.w.sendBatched(ctx, event)
	} else {
		err = s.w.send(ctx, event)
	}
	if ordered {
		s.orderMu.Unlock()
	}
	if err != nil {
		if !s.forget(c, false) {
			// The connection failed, or an answer matched c, meanwhile.
			s.received(<-c.ch)
		}
		putCall(c)
		return nil, s.sendErr(err)
	}
	res := s.wait(ctx, c, watched)
	putCall(c)
	s.received(res)
	if res.err == nil {
		if err := checkEdits(event, res.resp); err != nil {
			return nil, err
		}
	}
	return res.resp, res.err
}

// addCall enters c in the pending tables. busy says other calls are in
// flight; watched that a ctxWatch ends c's wait for its context (always,
// with watch set).
func (s *session) addCall(ctx context.Context, c *call, watch bool) (busy, watched bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false, false, s.err
	}
	if s.byCorr != nil && s.unmatchable.has(c.corr) {
		return false, false, unmatchableErr(c.corr)
	}
	s.pending.put(c)
	watched = c.done != nil && s.watchLocked(c, ctx, watch)
	if s.byCorr != nil {
		s.byCorr[c.corr] = append(s.byCorr[c.corr], c)
	}
	if c.deadline != 0 && !s.sweepArmed {
		s.armSweepLocked(s.cfg.callTimeout)
	}
	return s.pending.len() > 1, watched, nil
}

// wait returns c's result, or gives up on c when its context ends (unless
// a watch does that for it).
func (s *session) wait(ctx context.Context, c *call, watched bool) result {
	if c.done == nil || watched {
		return <-c.ch
	}
	select {
	case res := <-c.ch:
		return res
	case <-c.done:
		return s.abandon(c, agentwire.WrapContextError(ctx.Err()))
	}
}

// received releases the wire hold the reader took for res, if any.
func (s *session) received(res result) {
	if res.held {
		s.w.releaseBatch()
	}
}

// abandon gives up on c with err, unless its result raced in.
func (s *session) abandon(c *call, err error) result {
	if s.forget(c, true) {
		return result{err: err}
	}
	return <-c.ch // Send releases its hold
}

// forget removes c from the tables, as abandoned (sent) or never sent.
// False means someone else did and delivers c's result.
func (s *session) forget(c *call, sent bool) bool {
	s.mu.Lock()
	if !s.pending.has(c) {
		s.mu.Unlock()
		return false
	}
	var overrun error
	if sent {
		overrun = s.abandonLocked(c)
	} else {
		s.removeLocked(c)
	}
	s.mu.Unlock()
	if overrun != nil {
		s.fail(overrun)
	}
	return true
}

// removeLocked takes c, answered or never sent, out of every table; s.mu
// is held.
func (s *session) removeLocked(c *call) {
	s.pending.remove(c)
	s.unqueueLocked(c)
	s.unwatchLocked(c)
}

// sendErr is the error of a write: the connection's, if that failed.
func (s *session) sendErr(err error) error {
	var e *agentwire.Error
	if errors.As(err, &e) && e.Code() == agentwire.CodeUnavailable {
		if connErr := s.Err(); connErr != nil {
			return connErr
		}
	}
	return agentwire.WrapContextError(err)
}

// Notify implements Conn.
func (s *session) Notify(ctx context.Context, msg *agentv2.ProxyToAgent) error {
	if err := s.Err(); err != nil {
		return err
	}
	s.notified.Store(true)
	return s.sendErr(s.w.send(ctx, msg))
}

// Gathering reports whether an event sent now shares a system call with
// a batch being gathered (always false on gRPC and Connect). Not part of
// [Conn]: a balancer asserts it per connection.
func (s *session) Gathering() bool { return s.w.gathering() }

// armSweepLocked arms the call timeout's one timer to fire in d, for the
// oldest pending call (send order is deadline order); Close waits for its
// sweep. s.mu is held and no sweep is armed.
func (s *session) armSweepLocked(d time.Duration) {
	s.sweepArmed = true
	s.wg.Add(1)
	if s.sweepTimer == nil {
		s.sweepTimer = time.AfterFunc(d, s.sweep)
	} else {
		s.sweepTimer.Reset(d)
	}
}

// sweep fails the calls past their deadline and re-arms for the oldest left.
func (s *session) sweep() {
	defer s.wg.Done()
	var (
		expired []*call
		overrun error
	)
	now := time.Since(s.base)
	s.mu.Lock()
	s.sweepArmed = false
	for c := s.pending.oldest; c != nil && c.deadline <= now; c = s.pending.oldest {
		if err := s.abandonLocked(c); err != nil {
			overrun = err
		}
		expired = append(expired, c)
	}
	if c := s.pending.oldest; c != nil && s.err == nil {
		s.armSweepLocked(c.deadline - now)
	}
	s.mu.Unlock()
	if overrun != nil {
		s.fail(overrun)
	}
	if len(expired) > 0 {
		err := agentwire.Errorf(agentwire.CodeDeadlineExceeded, "no decision within %v", s.cfg.callTimeout)
		for _, c := range expired {
			s.deliver(c, result{err: err})
		}
	}
}
