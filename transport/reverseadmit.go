package transport

import (
	"errors"
	"fmt"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// AdmissionFunc decides whether one more connection of agentID may join,
// for whoever keeps the connections (pool.Pool.ReverseOptions is one), so
// that its limit is the only one. The listener calls it at registration,
// after authentication and before it answers. A non-nil err refuses the
// registration: the agent receives err's code (ResourceExhausted at a
// cap) and message in its registration response. Otherwise room is held
// for the connection and the listener later calls exactly one of admit,
// with the handshaken connection (admit then owns c, as an [AdmitFunc]
// does, and runs on the registration's goroutine), or release, when the
// connection fails or the listener closes before that. It must not block.
type AdmissionFunc func(agentID string, reg *agentv2.RegistrationRequest) (admit func(c Conn), release func(), err error)

// WithAdmission hands admission to f, in place of the listener's own
// per-agent cap and admit handler: with it, [WithMaxConnsPerAgent] and
// [WithAdmitHandler] are errors, so there is one limit, f's.
func WithAdmission(f AdmissionFunc) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.admission = f })
}

// slot is the room validate holds for one registering connection: the
// listener's own per-agent count, or an AdmissionFunc's reservation.
type slot struct {
	// admit receives the handshaken connection; nil means the admit
	// handler, with the listener's count released when the connection ends.
	admit   func(Conn)
	release func()
}

// reserve holds room for one more connection of reg's agent, or says why
// not. Capacity refusals come from an authenticated agent and are not
// held against its address ([WithPeerCooldown]).
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
		return nil, &rejection{code: agentwire.CodeResourceExhausted, capacity: true,
			reason: fmt.Sprintf("agent already holds %d connections, the limit", l.cfg.maxPerAgent)}
	}
	l.perAgent[id]++
	return &slot{release: func() { l.release(id) }}, nil
}

// admissionRejection tells the agent an AdmissionFunc's refusal: its code
// and its message without the code prefix.
func admissionRejection(err error) *rejection {
	code := agentwire.CodeOf(err)
	cause := err
	var ae *agentwire.Error
	if errors.As(err, &ae) && ae.Unwrap() != nil {
		cause = ae.Unwrap()
	}
	return &rejection{code: code, reason: cause.Error(), cause: cause,
		capacity: code == agentwire.CodeResourceExhausted}
}
