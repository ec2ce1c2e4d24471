package pool

import (
	"context"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool/internal/affinity"
)

// Pinning says how an event is routed and whether it pins its connection.
type Pinning uint8

const (
	// PinDefault routes as [Pool.Send] does.
	PinDefault Pinning = iota
	// PinAgain balances the event as if it started its request and pins
	// its connection in place of the request's pin (a lost one too).
	PinAgain
	// PinNone balances the event as if it started its request and pins
	// nothing (one of hedged attempts; [Pool.Pin] pins the winner).
	PinNone
)

// Reroute, on a [Call], steers an event that an interceptor moves between
// connections (failover, hedging).
type Reroute struct {
	Pin Pinning
	// Exclude is a connection id the event must not be balanced to.
	Exclude string
	// Routed, if set, hears the connection's id just before the send.
	Routed func(connID string)
}

// balanced reports whether the event is balanced whatever its kind.
func (r *Reroute) balanced() bool { return r != nil && r.Pin != PinDefault }

// pins reports whether an event of kind pins the connection it goes to.
func (r *Reroute) pins(kind agentv2.EventType) bool {
	if r == nil || r.Pin == PinDefault {
		return kind == agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS
	}
	return r.Pin == PinAgain
}

// unpins reports whether the event's end may end its request's pin: not
// for PinNone, which pinned nothing (a hedge's late block must not unpin
// the winner).
func (r *Reroute) unpins() bool { return r == nil || r.Pin != PinNone }

func (r *Reroute) excludes(sc *SubConn) bool {
	return r != nil && r.Exclude != "" && sc.id == r.Exclude
}

// Pin pins request correlationID of agent agentID to connection connID in
// place of its pin. It fails with Unavailable if the connection is gone.
func (p *Pool) Pin(agentID, correlationID, connID string) error {
	a, sc, err := p.subConn(agentID, connID)
	if err != nil {
		return err
	}
	if correlationID == "" {
		return agentwire.Errorf(agentwire.CodeInvalidArgument, "pool: Pin needs a correlation id")
	}
	if !a.aff.Put(a.aff.Key(correlationID), affinity.Entry[*SubConn]{Conn: sc, Touched: p.cfg.nanos()}) {
		return agentwire.Errorf(agentwire.CodeResourceExhausted, "%w: agent %q has %d", ErrAffinityFull, a.id, a.cfg.maxAffinities)
	}
	return nil
}

// CancelOn tells connection connID of agent agentID to abandon request
// req's request, leaving the request's pin alone: the loser of hedged
// attempts.
func (p *Pool) CancelOn(ctx context.Context, agentID, connID string, req *agentv2.CancelRequest) error {
	if req.GetCorrelationId() == "" {
		return agentwire.Errorf(agentwire.CodeInvalidArgument, "pool: CancelOn needs a correlation id")
	}
	_, sc, err := p.subConn(agentID, connID)
	if err != nil {
		return err
	}
	return sc.conn.Cancel(ctx, req)
}

// subConn finds a connection of an agent that is not gone.
func (p *Pool) subConn(agentID, connID string) (*agent, *SubConn, error) {
	a, err := p.agentFor(agentID)
	if err != nil {
		return nil, nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, sc := range a.conns {
		if sc.id == connID && !sc.gone() {
			return a, sc, nil
		}
	}
	return nil, nil, agentwire.Errorf(agentwire.CodeUnavailable, "%w: %s of agent %q", ErrNoConnAvailable, connID, agentID)
}
