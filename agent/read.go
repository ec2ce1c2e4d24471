package agent

import (
	"errors"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Inline cooldowns: after slow inline handlers, events go to workers for
// minCooldown events, twice as many after each further slow attempt, up to
// maxCooldown; slowStrikes slow inline events in a row start one (a
// takeover at once). A spurious takeover costs little, a slow handler tries
// inline once in maxCooldown events.
const (
	minCooldown = 64
	maxCooldown = 1 << 16
	slowStrikes = 2
)

// readLoop reads and acts on messages until the connection fails (err) or
// a takeover made another goroutine the reader (over). Events run on this
// goroutine while handlers are quick (see submit); the answers to a burst
// leave together once no input is buffered.
func (s *session) readLoop(id uint64) (err error, over bool) {
	bs, _ := s.st.(burstStream)
	held := false // answers wait for a ReleaseHeld
	for {
		if held && !bs.InputBuffered() {
			_ = bs.ReleaseHeld()
			held = false
		}
		m, err := s.st.Recv()
		if errors.Is(err, codec.ErrUnknownFrameType) {
			s.stats.unknown.Add(1)
			continue
		}
		if err != nil {
			if held {
				_ = bs.ReleaseHeld()
			}
			return err, false
		}
		cid, ok := m.EventCorrelationID()
		if !ok {
			if err := s.dispatch(m); err != nil {
				return err, false
			}
			continue
		}
		l := s.submit(cid, m)
		if l == nil {
			continue
		}
		held = bs != nil
		if !s.runInline(id, l, m, bs) {
			return nil, true
		}
	}
}

// runInline handles event m of lane l on reading goroutine id and reports
// whether it is still the reader; if not, the lane is left to the workers
// and held answers are released.
func (s *session) runInline(id uint64, l *lane, m *agentv2.ProxyToAgent, bs burstStream) bool {
	d := s.handle(l, m, bs)
	if h := s.srv.cfg.answeredHook; h != nil && bs == nil {
		h()
	}
	s.mu.Lock()
	reader := s.readerID == id
	if reader {
		s.inlineLane = nil
		s.inlineSeq.Add(1)
	}
	switch {
	case !reader:
		// takeover started the cooldown.
	case d > s.budget:
		// One slow event may be the reader losing its processor on a busy
		// machine; a second in a row is the handler.
		if s.strikes++; s.strikes >= slowStrikes {
			s.strikes = 0
			s.slowLocked()
			s.srv.watch.alert()
		}
	default:
		s.backoff, s.strikes = 0, 0
	}
	s.inlined++
	s.running--
	s.finishLocked(l, bs == nil)
	switch {
	case !l.empty() && !s.ended:
		// Events of this request arrived through the new reader.
		s.readyLaneLocked(l)
	case l.empty():
		if !reader {
			delete(s.lanes, l.cid) // joined at the takeover
		}
		l.finish()
	}
	s.mu.Unlock()
	if !reader && bs != nil {
		_ = bs.ReleaseHeld()
	}
	return reader
}

// slowLocked starts a cooldown after a slow inline event.
func (s *session) slowLocked() {
	s.backoff = min(max(2*s.backoff, minCooldown), maxCooldown)
	s.cooldown = s.backoff
}

// takeover runs when inline event seq outlived the budget: a new goroutine
// becomes the reader, and the old one finishes its event and leaves.
func (s *session) takeover(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.inlineLane == nil || s.inlineSeq.Load() != seq {
		return
	}
	s.lanes[s.inlineLane.cid] = s.inlineLane // the new reader may get its events
	s.inlineLane = nil
	s.inlineSeq.Add(1)
	s.readerID++
	s.takeovers++
	s.slowLocked()
	s.srv.watch.alert()
	id := s.readerID
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if s.lender != nil {
			s.lender.renew() // the old handler still reads the old buffers
		}
		if err, over := s.readLoop(id); !over {
			s.readDone <- s.stopReading(err)
		}
	}()
}

// submit queues an event on its correlation id's lane for a worker, or
// refuses it when too many are pending. It returns a new lane instead when
// the reader is to run the event itself: handlers have been quick, and no
// earlier event of the request is pending and no lane waits for a worker.
func (s *session) submit(cid string, m *agentv2.ProxyToAgent) *lane {
	s.mu.Lock()
	if s.waitingLocked() >= s.maxPending {
		s.mu.Unlock()
		s.refuse(cid, m, agentwire.Errorf(agentwire.CodeResourceExhausted,
			"agent: %d events pending on this connection, the limit is %d", s.maxPending, s.maxPending))
		return nil
	}
	l := s.lanes[cid]
	quiet := s.budget > 0 && s.inlineLane == nil && s.ready.len() == 0 && s.flow.Next(s.wantPause, s.waitingLocked()+1) == s.wantPause
	inline := l == nil && quiet && s.cooldown == 0
	if !inline && s.lender != nil {
		// The reader reads on: a queued event must not borrow its buffer.
		owned, err := s.lender.own(m)
		if err != nil {
			s.mu.Unlock()
			s.refuse(cid, m, agentwire.Errorf(agentwire.CodeInternal, "agent: copying a queued event: %w", err))
			return nil
		}
		m = owned
	}
	s.pending++
	flip := s.flowLocked()
	if l == nil {
		l = newLane(s.laneParent, cid)
		if inline {
			// Only the busy reader could look the lane up: it joins lanes
			// only at a takeover.
			s.inlineLane = l
			s.inlineSeq.Add(1)
			s.running++
			s.mu.Unlock()
			s.srv.watch.active()
			return l
		}
		s.lanes[l.cid] = l // cid may borrow the read buffer; l.cid does not
		if quiet {
			s.cooldown--
		}
		s.readyLaneLocked(l)
	}
	l.q.push(m)
	laneFlip := s.laneFlowLocked(l)
	s.mu.Unlock()
	if flip {
		s.updateFlow(nil)
	}
	if laneFlip {
		s.updateFlow(l)
	}
	return nil
}

// refuse answers event m with err instead of handling it.
func (s *session) refuse(cid string, m *agentv2.ProxyToAgent, err error) {
	s.stats.rejected.Add(1)
	s.reply(m.EventId, cid, nil, err, nil)
	s.st.Release(m)
}
