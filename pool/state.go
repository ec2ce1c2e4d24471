package pool

import (
	"github.com/agentwire/agentwire/pool/balancer"
	"github.com/agentwire/agentwire/transport"
)

// A connection's state reaches the pool as its transport pushes it, to the
// listener given at dial; the pool's own flags change it too. Either way
// the agent rebuilds its picker, off the send path.

// listen is sc's status listener, given to its transport at dial: it
// records each status pushed and rebuilds the picker.
func (sc *SubConn) listen(st transport.Status) {
	if sc.setStatus(st) {
		sc.agent.rebuild()
	}
}

// rebuild derives the connections' states and publishes a new picker. The
// status listeners call it, and so do changes of the pool's own flags and
// the probe tick; never the send path.
func (a *agent) rebuild() {
	a.mu.Lock()
	ch := a.rebuildLocked()
	a.mu.Unlock()
	a.report(ch)
}

// poll re-reads the status of connections built without the pool's
// listener (adopted ones), then rebuilds.
func (a *agent) poll() {
	a.mu.Lock()
	for _, sc := range a.conns {
		if !sc.pushed {
			sc.setStatus(sc.conn.Status())
		}
	}
	ch := a.rebuildLocked()
	a.mu.Unlock()
	a.report(ch)
}

type stateChange struct {
	sc       *SubConn
	from, to ConnState
}

// rebuildLocked derives each connection's state from its last pushed
// status and the pool's flags, and publishes a new picker over the
// pickable ones. a.mu must be held.
func (a *agent) rebuildLocked() []stateChange {
	if a.bal == nil {
		return nil // closed
	}
	var changes []stateChange
	ready := make([]*SubConn, 0, len(a.conns))
	var paused []*SubConn
	for _, sc := range a.conns {
		ns := sc.computeState()
		if old := ConnState(sc.state.Swap(int32(ns))); old != ns {
			changes = append(changes, stateChange{sc, old, ns})
		}
		switch {
		case ns.pickable():
			ready = append(ready, sc)
		case ns == ConnPaused:
			paused = append(paused, sc)
		}
	}
	conns := make([]balancer.SubConn, len(ready))
	for i, sc := range ready {
		conns[i] = sc
	}
	a.snap.Store(&snapshot{picker: a.bal.UpdateState(balancer.State{Conns: conns}), ready: ready, paused: paused})
	a.agreeLocked(ready)
	return changes
}

func (a *agent) report(changes []stateChange) {
	for _, c := range changes {
		if c.to == ConnConfiguring {
			a.replay(c.sc)
		}
		a.p.cfg.logger.Debug("pool: connection state", "agent", a.id, "conn", c.sc.id, "from", c.from, "to", c.to)
		a.p.connStateChange(a.id, c.sc.id, c.from, c.to)
	}
}

// Readiness is whether an agent takes new requests now ([Pool.Ready]),
// and if not, why.
type Readiness int

const (
	// Ready: a new request goes to a ready connection.
	Ready Readiness = iota + 1
	// NotReadyDraining: the agent or the pool drains, or is closed.
	NotReadyDraining
	// NotReadyBreakerOpen: the circuit breaker refuses requests (and is
	// Ready again when it would let a probe through).
	NotReadyBreakerOpen
	// NotReadyPaused: the connections are paused; a new request meets the
	// agent's [FlowControlMode].
	NotReadyPaused
	// NotReadyNoConn: no connection takes requests.
	NotReadyNoConn
)

var readinessNames = [...]string{"unknown", "ready", "draining", "breaker_open", "paused", "no_connection"}

func (r Readiness) String() string {
	if r < 0 || int(r) >= len(readinessNames) {
		return "unknown"
	}
	return readinessNames[r]
}

// Ready reports whether agent agentID takes new requests now, as
// [Pool.Send] would find it: a few atomic loads (and a lock while the
// breaker is not closed), no allocation. Events of open requests follow
// their pin whatever it says.
func (p *Pool) Ready(agentID string) (Readiness, error) {
	a := p.lookup(agentID)
	if a == nil {
		return 0, unknownAgent(agentID)
	}
	s := a.snap.Load()
	switch {
	case a.draining.Load() || p.state.Load() != poolOpen:
		return NotReadyDraining, nil
	case a.breaker.Refuses(p.cfg.nanos):
		return NotReadyBreakerOpen, nil
	case len(s.ready) > 0:
		return Ready, nil
	case len(s.paused) > 0:
		return NotReadyPaused, nil
	}
	return NotReadyNoConn, nil
}
