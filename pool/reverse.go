package pool

import (
	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// ReverseOptions returns the options that make a [transport.ReverseListener]
// feed this pool: connections are adopted as by [Pool.AdoptConn], with
// [Pool.ConnOptions], and [WithMaxReverseConns] is the listener's only
// per-agent limit. A connection over it is refused at registration, before
// the handshake, and the agent is told why (ResourceExhausted,
// [ErrReverseLimit]'s text); a slot frees when an adopted connection ends.
// Add the listener's authentication to them:
//
//	l, err := transport.NewReverseListener(append(p.ReverseOptions(), transport.WithGlobalToken(tok))...)
//
// They set [transport.WithAdmission] and [transport.WithConnOptionsFunc], so
// the listener takes neither an admit handler, a per-agent cap nor an
// options function of its own; [transport.WithConnOptions] still applies.
func (p *Pool) ReverseOptions() []transport.ReverseOption {
	return []transport.ReverseOption{
		transport.WithAdmission(p.admitReverse),
		transport.WithConnOptionsFunc(p.reverseConnOptions),
	}
}

// AdoptConn adds a connection the agent opened to the proxy (a reverse
// connection, already registered and handshaken) to agent agentID, creating
// the agent with the pool's defaults if needed. The pool owns c from then
// on; when it fails it is removed, not redialled. It fails with
// ResourceExhausted ([ErrReverseLimit]) past [WithMaxReverseConns], and the
// caller then keeps c. Build c with [Pool.ConnOptions] so that the pool
// learns of its state changes at once (otherwise at the next probe tick).
// With a [transport.ReverseListener], use [Pool.ReverseOptions] instead: it
// refuses connections over the limit before their handshake.
func (p *Pool) AdoptConn(agentID string, c transport.Conn) error {
	if agentID == "" || c == nil {
		return agentwire.Errorf(agentwire.CodeInvalidArgument, "pool: AdoptConn needs an agent id and a connection")
	}
	a, err := p.reverseAgent(agentID)
	if err != nil {
		return err
	}
	return a.adopt(nil, c, false)
}

// reverseConnOptions are the options of a reverse connection the listener
// admitted under admitReverse: its status goes to a SubConn made now,
// which admit installs (the listener hands both the same registration).
func (p *Pool) reverseConnOptions(agentID string, reg *agentv2.RegistrationRequest) []transport.Option {
	a := p.lookup(agentID)
	if a == nil {
		return p.ConnOptions(agentID)
	}
	sc := a.newSubConn("reverse", true)
	a.mu.Lock()
	if a.bound == nil {
		a.bound = make(map[*agentv2.RegistrationRequest]*SubConn)
	}
	a.bound[reg] = sc
	a.mu.Unlock()
	return p.handlerOptions(agentID, sc.listen)
}

// admitReverse is the pool's transport.AdmissionFunc: it holds a slot under
// the agent's reverse-connection limit until the listener admits the
// connection into it or releases it.
func (p *Pool) admitReverse(agentID string, reg *agentv2.RegistrationRequest) (admit func(transport.Conn), release func(), err error) {
	a, err := p.reverseAgent(agentID)
	if err != nil {
		return nil, nil, err
	}
	a.mu.Lock()
	err = a.reserveLocked()
	a.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	admit = func(c transport.Conn) {
		a.mu.Lock()
		sc := a.bound[reg]
		delete(a.bound, reg)
		a.mu.Unlock()
		if a.adopt(sc, c, true) != nil {
			closeConn(c) // the agent closed meanwhile
		}
	}
	release = func() {
		a.mu.Lock()
		a.reserved--
		delete(a.bound, reg)
		a.mu.Unlock()
	}
	return admit, release, nil
}

// reverseAgent returns agent agentID, creating it with the pool's defaults
// if needed.
func (p *Pool) reverseAgent(agentID string) (*agent, error) {
	if a := p.lookup(agentID); a != nil {
		return a, nil
	}
	cfg := p.cfg.agent
	if err := cfg.validate(); err != nil {
		return nil, agentwire.NewError(agentwire.CodeInvalidArgument, err)
	}
	a := newAgent(p, agentID, cfg, "")
	if err := p.register(a); err != nil {
		if agentwire.CodeOf(err) != agentwire.CodeAlreadyExists {
			return nil, err
		}
		if a = p.lookup(agentID); a == nil {
			return nil, unknownAgent(agentID)
		}
	}
	return a, nil
}

// reserveLocked holds a slot for one more reverse connection; adopt takes
// it. Installed and reserved connections count alike against the limit,
// so a registration the pool let in is never refused afterwards.
func (a *agent) reserveLocked() error {
	if a.closed {
		return a.p.closedErr()
	}
	if a.reverse+a.reserved >= a.cfg.maxReverse {
		return agentwire.Errorf(agentwire.CodeResourceExhausted, "%w: %q already holds %d, the proxy's limit",
			ErrReverseLimit, a.id, a.cfg.maxReverse)
	}
	a.reserved++
	return nil
}

// adopt installs c as sc (a new SubConn if nil), in the slot
// reserveLocked held if reserved. It fails, leaving c to the caller, if
// the agent is closed or (unreserved) at its limit.
func (a *agent) adopt(sc *SubConn, c transport.Conn, reserved bool) error {
	if sc == nil {
		sc = a.newSubConn("reverse", true)
	}
	a.mu.Lock()
	if !reserved {
		if err := a.reserveLocked(); err != nil {
			a.mu.Unlock()
			return err
		}
	}
	a.reserved--
	if a.closed {
		a.mu.Unlock()
		return a.p.closedErr()
	}
	a.installLocked(sc, c)
	ch := a.rebuildLocked()
	a.wg.Add(1)
	go a.watchReverse(sc)
	a.mu.Unlock()
	a.report(ch)
	a.noticeLate(sc)
	return nil
}
