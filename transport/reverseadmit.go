package transport

import (
	"errors"
	"fmt"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// AdmissionFunc decides whether one more connection of agentID may join,
// for whoever keeps the connections (pool.Pool.ReverseOptions), so that its
// limit is the only one. It runs at registration, after authentication and
// before the answer, and must not block. A non-nil err refuses the
// registration with err's code and message. Otherwise the listener later
// calls exactly one of admit, with the handshaken connection (which admit
// then owns, as an [AdmitFunc] does), or release, when the connection
// fails or the listener closes first.
type AdmissionFunc func(agentID string, reg *agentv2.RegistrationRequest) (admit func(c Conn), release func(), err error)

// WithAdmission hands admission to f, in place of the listener's own
// per-agent cap and admit handler: with it, [WithMaxConnsPerAgent] and
// [WithAdmitHandler] are errors, so there is one limit, f's.
func WithAdmission(f AdmissionFunc) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.admission = f })
}

// slot is the room held for one registering connection: an AdmissionFunc's
// reservation, or a place in the listener's own per-agent count, which
// ended (called when the admitted connection ends) gives back.
type slot struct {
	admit          func(Conn)
	release, ended func()
}

// reserve holds room for one more connection of reg's agent, or says why
// not.
func (l *ReverseListener) reserve(reg *agentv2.RegistrationRequest) (*slot, *rejection) {
	id := reg.GetAgentId()
	if f := l.cfg.admission; f != nil {
		admit, release, err := f(id, reg)
		if err != nil {
			return nil, admissionRejection(err)
		}
		return &slot{admit: admit, release: release}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perAgent[id] >= l.cfg.maxPerAgent {
		return nil, &rejection{code: agentwire.CodeResourceExhausted,
			reason: fmt.Sprintf("agent already holds %d connections, the limit", l.cfg.maxPerAgent)}
	}
	l.perAgent[id]++
	release := func() { l.release(id) }
	return &slot{admit: func(c Conn) { l.cfg.admit(id, c, reg) }, release: release, ended: release}, nil
}

// release gives back one of agentID's places under the listener's own cap.
func (l *ReverseListener) release(agentID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perAgent[agentID]--; l.perAgent[agentID] <= 0 {
		delete(l.perAgent, agentID)
	}
}

// admissionRejection tells the agent an AdmissionFunc's refusal: its code
// and its message without the code prefix.
func admissionRejection(err error) *rejection {
	cause := err
	var ae *agentwire.Error
	if errors.As(err, &ae) && ae.Unwrap() != nil {
		cause = ae.Unwrap()
	}
	return &rejection{code: agentwire.CodeOf(err), reason: cause.Error(), cause: cause}
}
