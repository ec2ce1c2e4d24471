package pool

import (
	"context"
	"errors"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/pool/breaker"
	"github.com/agentwire/agentwire/transport"
)

// A caller whose deadline passes, or who cancels, says nothing about the
// agent as a rule: the caller may be in a hurry. But a call given up after
// twice the liveness interval or longer on a connection that received
// nothing at all meanwhile (no answer to another call, no health report,
// not the pong to the ping the transport sent after one interval of
// silence) shows a hung agent: it counts as a failure of the connection,
// and once per connection against the agent's breaker, like the
// connection's loss. The transport drops such a connection soon after (see
// transport.WithLiveness); this covers callers whose deadlines are shorter
// than that, and connections without the check.

// markSilence reads the connection's receive count before a send; false
// means the call's end will not be judged by it.
func (x *exchange) markSilence() (uint64, bool) {
	r := x.sc.recv
	if r == nil || x.a.cfg.liveness <= 0 || x.ctx.Done() == nil {
		return 0, false
	}
	if d, ok := x.ctx.Deadline(); ok {
		x.budget = time.Until(d) // the caller's own budget, on the clock its deadline is on
	}
	return r.Received(), true
}

// heardNothing reports whether a call that ended with err, whose send
// found the receive count at mark, was given up by its caller after twice
// the liveness interval with nothing received from the agent since.
func (x *exchange) heardNothing(err error, mark uint64) bool {
	waited := x.latency
	if x.budget > 0 && errors.Is(x.ctx.Err(), context.DeadlineExceeded) {
		// A caller whose deadline was short is in a hurry however late it
		// was scheduled after the deadline passed.
		waited = min(waited, x.budget)
	}
	if x.outcome != breaker.Neutral || x.ctx.Err() == nil || waited < 2*x.a.cfg.liveness {
		return false
	}
	switch agentwire.CodeOf(err) {
	case agentwire.CodeCanceled, agentwire.CodeDeadlineExceeded:
		return x.sc.recv.Received() == mark
	}
	return false
}

// receiverOf returns c's receive counter, or nil if it keeps none.
func receiverOf(c transport.Conn) transport.Receiver {
	r, _ := c.(transport.Receiver)
	return r
}
