package pool

import (
	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool/balancer"
	"github.com/agentwire/agentwire/pool/internal/affinity"
	"github.com/agentwire/agentwire/pool/internal/limiter"
)

// Routing: which connection an event goes to, and its slot there.

// route chooses the connection: fixed, pinned by affinity, sticky, or
// picked.
func (x *exchange) route(rt route) error {
	a := x.a
	if rt.conn != nil {
		if ok, err := x.take(rt.conn, false); !ok {
			if err != nil {
				return err
			}
			return agentwire.Errorf(agentwire.CodeUnavailable, "%w: %s closed", ErrNoConnAvailable, rt.conn.id)
		}
		return nil
	}
	if x.kind != agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS && x.key.String() != "" && !x.reroute.balanced() {
		var (
			e  affinity.Entry[*SubConn]
			ok bool
		)
		if x.kind == agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE && x.reroute.unpins() {
			// The request ends with this event: its pin goes now rather
			// than after the answer (one table operation, not two).
			e, ok = a.aff.Del(x.key)
			x.unpinned = true
		} else {
			e, ok = a.aff.Use(x.key)
		}
		if ok {
			if e.Skip {
				x.skip = true
				return nil
			}
			if !e.Lost {
				if ok, err := x.take(e.Conn, true); ok || err != nil {
					return err
				}
			}
			return agentwire.Errorf(agentwire.CodeFailedPrecondition, "%w: request %q was on %s",
				ErrAffinityLost, x.key.String(), e.Conn.id)
		}
		// request_complete finds no pin after a terminal decision ended
		// the request: that is its normal end, not a miss.
		if x.kind != agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE {
			a.affinityMisses.Add(1)
			if c := x.call; c != nil {
				c.AffinityMiss = true
			}
		}
	}
	// A new request, or an event without one.
	if a.draining.Load() || a.p.state.Load() != poolOpen {
		sentinel := ErrDraining
		if a.p.state.Load() == poolClosed {
			sentinel = ErrClosed
		}
		return agentwire.Errorf(agentwire.CodeUnavailable, "%w: agent %q", sentinel, a.id)
	}
	ok, probe := true, false
	if !a.breaker.Closed() {
		ok, probe = a.breaker.Allow(x.now())
	}
	if !ok {
		a.breakerRejected.Add(1)
		return agentwire.Errorf(agentwire.CodeUnavailable, "%w: agent %q", ErrCircuitOpen, a.id)
	}
	x.probe = probe
	var session affinity.Key
	if rt.session != "" {
		session = a.sticky.Key(rt.session)
		if e, ok := a.sticky.Get(session, x.now()); ok && e.Conn.State().pickable() {
			if ok, err := x.take(e.Conn, false); ok || err != nil {
				return err
			}
		}
	}
	if err := x.pick(); err != nil {
		return err
	}
	if rt.session != "" && !a.sticky.Put(session, affinity.Entry[*SubConn]{Conn: x.sc, Touched: x.now()}) {
		a.stickyOverflow.Add(1)
	}
	return nil
}

// take routes the event to sc with one of its slots, waiting for a slot up
// to the queue wait; on a paused connection, flow control comes first and
// deliver takes the slot. It reports false with no error if sc does not
// take the event (closed, or retired and the event not pinned to it): the
// caller routes it elsewhere.
func (x *exchange) take(sc *SubConn, pinned bool) (bool, error) {
	if !pinned && x.reroute.excludes(sc) {
		return false, nil
	}
	if sc.conn.Paused(x.key.String()) {
		if sc.gone() || !pinned && sc.slots.Retired() {
			return false, nil
		}
		x.sc, x.pinned, x.paused = sc, pinned, true
		return true, nil
	}
	return x.slot(sc, pinned)
}

// slot takes one of sc's slots for the event (see take).
func (x *exchange) slot(sc *SubConn, pinned bool) (bool, error) {
	ok, err := sc.slots.TryAcquire(pinned)
	if err == limiter.ErrRetired {
		// Retired after the picker was built: route elsewhere.
		return false, nil
	}
	if !ok && err == nil && x.async {
		// Nothing may wait: fail as a queue wait of zero does.
		x.a.limitRejected.Add(1)
		return false, agentwire.Errorf(agentwire.CodeResourceExhausted, "%w: %s has %d in flight", ErrConcurrencyLimit, sc.id, sc.slots.Limit())
	}
	if !ok && err == nil {
		ok, err = x.wait(sc, pinned)
	}
	if !ok {
		return false, err
	}
	if sc.gone() {
		sc.slots.Release()
		return false, nil
	}
	x.sc, x.pinned, x.slotted = sc, pinned, true
	return true, nil
}

// wait takes a slot on a full connection, waiting up to the queue wait.
func (x *exchange) wait(sc *SubConn, pinned bool) (bool, error) {
	a := x.a
	waited, err := sc.slots.Acquire(x.ctx, pinned, sc.conn.Done(), a.cfg.queueWait)
	switch {
	case err == nil:
		if waited {
			x.sendAt = a.p.cfg.nanos()
		}
		return true, nil
	case err == limiter.ErrRetired:
		return false, nil
	case err == limiter.ErrGone:
		return false, sc.conn.Err()
	case err != limiter.ErrWait:
		return false, agentwire.WrapContextError(err)
	}
	a.limitRejected.Add(1)
	return false, agentwire.Errorf(agentwire.CodeResourceExhausted, "%w: %s has %d in flight", ErrConcurrencyLimit, sc.id, sc.slots.Limit())
}

// pickAttempts bounds re-picking when a picker hands out a connection that
// was retired or closed after the picker was built.
const pickAttempts = 3

func (x *exchange) pick() error {
	a := x.a
	var stale *snapshot
	for range pickAttempts {
		s := a.snap.Load()
		if len(s.ready) == 0 {
			if len(s.paused) > 0 {
				// Everything is paused: let flow control decide.
				if ok, err := x.take(s.paused[bounded(a.p.cfg.rand(), len(s.paused))], false); ok || err != nil {
					return err
				}
				continue
			}
			break
		}
		if s == stale {
			// The picker predates a connection's end and its listener has
			// not rebuilt it yet: any other of its connections will do.
			return x.scan(s)
		}
		res, err := s.picker.Pick(balancer.PickInfo{CorrelationID: x.key.String(), Event: x.kind})
		if err != nil {
			return err
		}
		sc, ok := res.Conn.(*SubConn)
		if !ok || sc.agent != a {
			if res.Done != nil {
				res.Done(balancer.DoneInfo{Err: errBadPick})
			}
			return errBadPick
		}
		ok, err = x.take(sc, false)
		if ok {
			x.done = res.Done
			return nil
		}
		if res.Done != nil {
			if err == nil {
				err = errStalePick
			}
			res.Done(balancer.DoneInfo{Err: err})
		}
		if err != nil && err != errStalePick {
			return err
		}
		stale = s
	}
	return agentwire.Errorf(agentwire.CodeUnavailable, "%w: agent %q", ErrNoConnAvailable, a.id)
}

// scan routes the event to the first of s's ready connections, from a
// random one on, that takes it.
func (x *exchange) scan(s *snapshot) error {
	n := len(s.ready)
	for i, off := 0, bounded(x.a.p.cfg.rand(), n); i < n; i++ {
		if ok, err := x.take(s.ready[(off+i)%n], false); ok || err != nil {
			return err
		}
	}
	return agentwire.Errorf(agentwire.CodeUnavailable, "%w: agent %q", ErrNoConnAvailable, x.a.id)
}

// errStalePick is what a picker's Done hears when its connection went away
// before the event could use it; the event is picked again.
var errStalePick = agentwire.Errorf(agentwire.CodeUnavailable, "pool: picked connection went away; picked again")

// bounded maps a random value to [0, n), n > 0.
func bounded(r uint64, n int) int { return int(r % uint64(n)) }

var errBadPick = agentwire.Errorf(agentwire.CodeInternal, "pool: picker returned a connection of another agent")
