package agent

import (
	"context"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

// lane is the queue of one correlation id's events, run in order by one
// goroutine at a time. It is also its handlers' context, carrying the
// correlation id and cancelled by cancel messages, the session's end and
// its last answer; the cancellable context behind it is made only when
// somebody asks for Done or cancels, so a lane costs one allocation.
type lane struct {
	parent context.Context // the session's values, without its cancellation
	cid    string
	cc     atomic.Pointer[laneCancel]

	q fifo[*agentv2.ProxyToAgent]
	// first backs q while the lane holds one event, the common case.
	first [1]*agentv2.ProxyToAgent
	// wantPause (under the session's mu) and sentPause (under its flowMu)
	// are the request's flow-control state.
	wantPause, sentPause bool
	// cidBuf holds a short cid (a UUID) without a second allocation.
	cidBuf [laneCIDSize]byte
}

// laneCIDSize is the longest correlation id a lane keeps in itself.
const laneCIDSize = 48

// laneCancel is a lane's cancellable context, once it has one.
type laneCancel struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// finishedLane is the context of lanes that ended before anybody needed
// one: cancelled with context.Canceled.
var finishedLane = func() *laneCancel {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(context.Canceled)
	return &laneCancel{ctx: ctx, cancel: cancel}
}()

var _ context.Context = (*lane)(nil)

// newLane returns a lane for cid, which it copies: cid may point into a
// read buffer.
func newLane(parent context.Context, cid string) *lane {
	l := &lane{parent: parent}
	if n := copy(l.cidBuf[:], cid); n == len(cid) && n > 0 {
		l.cid = unsafe.String(&l.cidBuf[0], n)
	} else {
		l.cid = strings.Clone(cid)
	}
	l.q.s = l.first[:0]
	return l
}

// cancellable returns the lane's cancellable context, making it if needed.
func (l *lane) cancellable() *laneCancel {
	if c := l.cc.Load(); c != nil {
		return c
	}
	ctx, cancel := context.WithCancelCause(l.parent)
	c := &laneCancel{ctx: ctx, cancel: cancel}
	if l.cc.CompareAndSwap(nil, c) {
		return c
	}
	cancel(nil)
	return l.cc.Load()
}

// Deadline implements context.Context: lanes have none of their own.
func (l *lane) Deadline() (time.Time, bool) { return l.parent.Deadline() }

// Done implements context.Context.
func (l *lane) Done() <-chan struct{} { return l.cancellable().ctx.Done() }

// Err implements context.Context.
func (l *lane) Err() error {
	if c := l.cc.Load(); c != nil {
		return c.ctx.Err()
	}
	return nil
}

// Value implements context.Context: the correlation id, the session's
// values, and the cancellable context's (so context.Cause works).
func (l *lane) Value(key any) any {
	if _, ok := key.(correlationKey); ok {
		return l.cid
	}
	if v := l.parent.Value(key); v != nil {
		return v
	}
	if c := l.cc.Load(); c != nil {
		return c.ctx.Value(key)
	}
	return nil
}

// cancel cancels the lane's handler calls with cause.
func (l *lane) cancel(cause error) { l.cancellable().cancel(cause) }

// finish cancels the lane after its last answer, making no context if
// nobody asked for one.
func (l *lane) finish() {
	if l.cc.Load() == nil && l.cc.CompareAndSwap(nil, finishedLane) {
		return
	}
	l.cc.Load().cancel(context.Canceled)
}

func (l *lane) empty() bool { return l.q.len() == 0 }

// fifo is a queue whose slice is reused once it is emptied.
type fifo[T any] struct {
	s    []T
	head int
}

func (f *fifo[T]) push(x T) { f.s = append(f.s, x) }

func (f *fifo[T]) len() int { return len(f.s) - f.head }

func (f *fifo[T]) pop() T {
	x := f.s[f.head]
	var zero T
	f.s[f.head] = zero
	f.head++
	if f.head == len(f.s) {
		f.s, f.head = f.s[:0], 0
	}
	return x
}

// readyLaneLocked queues lane l for a worker and wakes or starts one.
func (s *session) readyLaneLocked(l *lane) {
	s.ready.push(l)
	switch {
	case s.idle > 0:
		s.idle--
		s.work.Signal()
	case s.workers < s.limit:
		s.workers++
		s.wg.Add(1)
		go s.worker()
	}
}

// worker runs ready lanes until the session ends, parking when there is
// nothing to do, or exiting when enough workers are parked already.
func (s *session) worker() {
	defer s.wg.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		l := s.nextLaneLocked()
		if l == nil {
			s.workers--
			return
		}
		for !s.ended {
			m := l.q.pop()
			s.running++
			s.mu.Unlock()
			s.handle(l, m, nil)
			if h := s.srv.cfg.answeredHook; h != nil {
				h()
			}
			s.mu.Lock()
			s.running--
			s.finishLocked(l, true)
			if l.empty() {
				delete(s.lanes, l.cid)
				l.finish()
				break
			}
		}
	}
}

func (s *session) nextLaneLocked() *lane {
	for !s.ended {
		if s.ready.len() > 0 {
			return s.ready.pop()
		}
		if s.idle >= s.maxIdle {
			return nil
		}
		s.idle++
		s.work.Wait()
	}
	return nil
}

// finishLocked accounts for an answered event of lane l: the pending count,
// idle waiters, flow control; replied says replying counted it. It may
// release s.mu for a while.
func (s *session) finishLocked(l *lane, replied bool) {
	if replied {
		s.answering--
	}
	if s.pending--; s.pending == 0 {
		s.wakeIdleLocked()
	}
	flip, laneFlip := s.flowLocked(), s.laneFlowLocked(l)
	if flip || laneFlip {
		s.mu.Unlock()
		if laneFlip {
			s.updateFlow(l)
		}
		if flip {
			s.updateFlow(nil)
		}
		s.mu.Lock()
	}
}

// flowLocked updates wantPause from the events waiting and reports
// whether it changed.
func (s *session) flowLocked() bool {
	was := s.wantPause
	s.wantPause = s.flow.Next(was, s.waitingLocked())
	return was != s.wantPause
}

// waitingLocked is what flow control counts: the events pending but those
// whose answer is on its way.
func (s *session) waitingLocked() int { return s.pending - s.answering }

// replying takes an event about to be answered out of flow control's count
// before the answer leaves, resuming the connection if that was the last
// event over the mark: the proxy may send its next event as soon as it has
// the answer, and must not find the connection paused by an event the
// agent has answered. finishLocked ends the count.
func (s *session) replying() {
	s.mu.Lock()
	s.answering++
	flip := s.flowLocked()
	s.mu.Unlock()
	if flip {
		s.updateFlow(nil)
	}
}

// laneFlowLocked updates l.wantPause from its queued events and reports
// whether it changed.
func (s *session) laneFlowLocked(l *lane) bool {
	was := l.wantPause
	l.wantPause = s.laneFlow.Next(was, l.q.len())
	return was != l.wantPause
}

// updateFlow sends PAUSE or RESUME for the connection (l == nil) or one
// request when the wanted state differs from the last one sent. Sends are
// serialised, so the last one the proxy sees is the latest state.
func (s *session) updateFlow(l *lane) {
	s.flowMu.Lock()
	defer s.flowMu.Unlock()
	want, sent := &s.wantPause, &s.sentPause
	var cid *string
	if l != nil {
		want, sent, cid = &l.wantPause, &l.sentPause, &l.cid
	}
	s.mu.Lock()
	w := *want
	s.mu.Unlock()
	if w == *sent {
		return
	}
	*sent = w
	_ = s.send(wire.FlowSignal(cid, w, s.srv.nowMs()))
}
