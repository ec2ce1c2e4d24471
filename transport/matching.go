package transport

import (
	"log/slog"
	"slices"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Matching responses to calls (docs/protocol.md §6 states these rules for
// agent authors). A response reaches a caller only when it is provably that
// caller's answer:
//
//   - With an event id, it goes to the call with that id, and only if it
//     names the call's correlation id; another one is a protocol violation
//     that closes the connection (every call on it fails).
//   - Without one (agents that do not echo ids), it goes to the oldest
//     unanswered event of its correlation id. A call that gives up leaves a
//     placeholder in that queue for its late answer to consume.
//   - A cancel lets an agent drop its answers, which position matching
//     cannot tell: a request cancelled with events unanswered is
//     "unmatchable" on that connection, and its later events fail at once.
//
// Late answers (to calls that gave up) and duplicates are dropped and
// counted apart.

// maxPlaceholders bounds the events a non-echoing agent may leave
// unanswered after their callers gave up; past it the connection is
// recycled, as position matching can no longer be trusted to stay short.
const maxPlaceholders = 4096

// maxRemembered bounds the abandoned ids (echo mode) and unmatchable
// correlation ids (no-echo mode) one connection remembers.
const maxRemembered = 4096

// verdict is what matching made of one response.
type verdict int

const (
	matched verdict = iota
	late
	duplicate
	violation
)

// matchLocked finds the call a response answers. For a violation, err
// says what the agent did, and the caller fails the connection with it.
// s.mu is held.
func (s *session) matchLocked(id uint64, corr string) (*call, verdict, error) {
	if id != 0 {
		if c := s.pending.get(id); c != nil {
			if c.corr != corr {
				return nil, violation, s.mismatch(id, c.corr, corr)
			}
			s.removeLocked(c)
			return c, matched, nil
		}
		if s.byCorr != nil && s.dropPlaceholderLocked(id, corr) {
			return nil, late, nil
		}
		if s.abandoned.remove(id) {
			return nil, late, nil
		}
		if id > s.nextID.Load() {
			return nil, violation, agentwire.Errorf(agentwire.CodeInternal,
				"%w: answer to event id %d, which was never sent", ErrProtocol, id)
		}
		return nil, duplicate, nil
	}
	if s.byCorr == nil {
		return nil, violation, agentwire.Errorf(agentwire.CodeInternal,
			"%w: %w: the agent declared it echoes event ids but answered request %q without one",
			ErrProtocol, ErrMismatch, corr)
	}
	q := s.byCorr[corr]
	if len(q) == 0 {
		if s.unmatchable.has(corr) {
			return nil, late, nil
		}
		// More answers than events: the agent's answers for this request
		// are out of step, so no later event of it is matched here.
		s.unmatchable.add(corr)
		return nil, duplicate, nil
	}
	c := q[0]
	if c.placeholder {
		q[0] = nil
		s.placeholders--
		s.setQueueLocked(corr, q[1:])
		return nil, late, nil
	}
	s.removeLocked(c)
	return c, matched, nil
}

// mismatch is the violation of an agent that answered event id, of request
// want, naming request got.
func (s *session) mismatch(id uint64, want, got string) error {
	s.log(slog.LevelError, "agent answered an event with another request's correlation id; closing the connection",
		slog.Uint64("event_id", id), slog.String("correlation_id", want), slog.String("answered_for", got))
	return agentwire.Errorf(agentwire.CodeInternal, "%w: %w: event %d of request %q answered for request %q",
		ErrProtocol, ErrMismatch, id, want, got)
}

// abandonLocked takes c, whose caller gives up, out of the pending calls,
// keeping what matching needs to recognise its late answer. An error says
// too many events are unanswered: the caller fails the connection with it.
// s.mu is held.
func (s *session) abandonLocked(c *call) error {
	s.pending.remove(c)
	s.unwatchLocked(c)
	if s.byCorr == nil {
		s.abandoned.add(c.id)
		return nil
	}
	q := s.byCorr[c.corr]
	for i, p := range q {
		if p == c {
			q[i] = &call{id: c.id, corr: c.corr, placeholder: true}
			s.placeholders++
			break
		}
	}
	if s.placeholders > maxPlaceholders {
		return agentwire.Errorf(agentwire.CodeUnavailable,
			"%w: the agent left %d events unanswered; answers can no longer be matched by position",
			ErrProtocol, s.placeholders)
	}
	return nil
}

// dropPlaceholderLocked removes the placeholder of event id from corr's
// queue, if there is one; s.mu is held.
func (s *session) dropPlaceholderLocked(id uint64, corr string) bool {
	i := slices.IndexFunc(s.byCorr[corr], func(p *call) bool { return p.placeholder && p.id == id })
	if i < 0 {
		return false
	}
	s.placeholders--
	s.setQueueLocked(corr, slices.Delete(s.byCorr[corr], i, i+1))
	return true
}

// unqueueLocked removes c from its request's queue, if queued; s.mu is held.
func (s *session) unqueueLocked(c *call) {
	if s.byCorr == nil {
		return
	}
	if q := s.byCorr[c.corr]; len(q) > 0 {
		s.setQueueLocked(c.corr, slices.DeleteFunc(q, func(p *call) bool { return p == c }))
	}
}

func (s *session) setQueueLocked(corr string, q []*call) {
	if len(q) == 0 {
		delete(s.byCorr, corr)
	} else {
		s.byCorr[corr] = q
	}
}

// cancelQueueLocked forgets corr's queue for a cancel (all queues for
// ""): the agent may drop the answers still owed, so a request that had
// any becomes unmatchable. It returns the calls to fail. No-echo mode
// only; s.mu is held.
func (s *session) cancelQueueLocked(corr string) []*call {
	var victims []*call
	for qc, q := range s.byCorr {
		if corr != "" && qc != corr {
			continue
		}
		for _, c := range q {
			if c.placeholder {
				s.placeholders--
				continue
			}
			victims = append(victims, c)
		}
		s.unmatchable.add(qc)
		delete(s.byCorr, qc)
	}
	for _, c := range victims {
		s.pending.remove(c)
		s.unwatchLocked(c)
	}
	return victims
}

// cancelPendingLocked abandons and returns the calls of corr (all for "")
// up to event id maxID, for a cancel. Echo mode only; s.mu is held.
func (s *session) cancelPendingLocked(corr string, maxID uint64) []*call {
	var victims []*call
	for c := s.pending.oldest; c != nil; {
		next := c.next
		if (corr == "" || c.corr == corr) && c.id <= maxID {
			victims = append(victims, c)
			s.removeLocked(c)
			s.abandoned.add(c.id)
		}
		c = next
	}
	return victims
}

// unmatchableErr fails an event of a request that cannot be matched here.
func unmatchableErr(corr string) error {
	return agentwire.Errorf(agentwire.CodeFailedPrecondition,
		"%w: request %q was cancelled (or over-answered) on this connection with answers outstanding, and the agent does not echo event ids",
		ErrUnmatchable, corr)
}

// noDecisionErr fails a call answered with neither decision nor error.
func noDecisionErr(id uint64, corr string) error {
	return agentwire.Errorf(agentwire.CodeInternal, "%w: event %d of request %q", ErrNoDecision, id, corr)
}

// decided reports whether resp carries a decision.
func decided(resp *agentv2.AgentResponse) bool { return resp.GetDecision() != nil }

// recentSet is a bounded set that forgets its oldest members first.
type recentSet[K comparable] struct {
	set  map[K]struct{}
	ring []K
	next int
}

func (r *recentSet[K]) add(k K) {
	if r.set == nil {
		r.set = make(map[K]struct{})
	}
	if _, ok := r.set[k]; ok {
		return
	}
	if len(r.ring) < maxRemembered {
		r.ring = append(r.ring, k)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = k
		r.next = (r.next + 1) % maxRemembered
	}
	r.set[k] = struct{}{}
}

func (r *recentSet[K]) has(k K) bool {
	_, ok := r.set[k]
	return ok
}

// remove deletes k from the set (its ring slot is reused in turn).
func (r *recentSet[K]) remove(k K) bool {
	if _, ok := r.set[k]; !ok {
		return false
	}
	delete(r.set, k)
	return true
}
