package agent

import (
	"context"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// lane is the queue of one correlation id's events: one goroutine at a time
// runs them, one after another, so they are handled in order.
//
// A lane is the context of its handler calls: cancelled by cancel messages,
// when the session ends and once its last event is answered, and carrying
// the correlation id for Peer.Log. Most handlers never look at
// cancellation, so the cancellable context behind it is made only when
// somebody asks for Done or cancels: a lane costs one allocation.
type lane struct {
	parent context.Context // the session's values, without its cancellation
	cid    string
	cc     atomic.Pointer[laneCancel]

	q    []*agentv2.ProxyToAgent
	head int
	// first backs q while the lane holds one event, the common case.
	first [1]*agentv2.ProxyToAgent
	// wantPause (guarded by the session's mu) and sentPause (guarded by its
	// flowMu) are the per-request flow-control state.
	wantPause, sentPause bool
	// cidBuf holds cid when it is short, as it usually is (a UUID): the
	// lane owns its correlation id without a second allocation.
	cidBuf [laneCIDSize]byte
}

// laneCIDSize is the longest correlation id a lane keeps in itself.
const laneCIDSize = 48

// laneCancel is a lane's cancellable context, once it has one.
type laneCancel struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// finishedLane is the context of lanes that ended before anybody needed a
// cancellable one: cancelled, with context.Canceled as its cause.
var finishedLane = func() *laneCancel {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(context.Canceled)
	return &laneCancel{ctx: ctx, cancel: cancel}
}()

var _ context.Context = (*lane)(nil)

// newLane returns a lane for correlation id cid, which it copies: cid may
// point into a read buffer that is reused, or that would stay in memory for
// as long as the request lasts.
func newLane(parent context.Context, cid string) *lane {
	l := &lane{parent: parent}
	if n := copy(l.cidBuf[:], cid); n == len(cid) && n > 0 {
		l.cid = unsafe.String(&l.cidBuf[0], n)
	} else {
		l.cid = strings.Clone(cid)
	}
	l.q = l.first[:0]
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
// values, and the cancellable context's own key (so context.Cause reports
// why the lane was cancelled).
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

// finish cancels the lane once its last event is answered, without making
// a context if nobody asked for one.
func (l *lane) finish() {
	if l.cc.Load() == nil && l.cc.CompareAndSwap(nil, finishedLane) {
		return
	}
	l.cc.Load().cancel(context.Canceled)
}

func (l *lane) push(m *agentv2.ProxyToAgent) { l.q = append(l.q, m) }

func (l *lane) pop() *agentv2.ProxyToAgent {
	m := l.q[l.head]
	l.q[l.head] = nil
	l.head++
	if l.head == len(l.q) {
		l.q, l.head = l.q[:0], 0
	}
	return m
}

func (l *lane) empty() bool { return l.head == len(l.q) }
