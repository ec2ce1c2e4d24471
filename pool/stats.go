package pool

import (
	"math"
	"slices"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool/breaker"
	"github.com/agentwire/agentwire/transport"
)

// BreakerState is the state of an agent's circuit breaker
// ([WithCircuitBreaker]).
type BreakerState = breaker.State

// The states of a circuit breaker.
const (
	BreakerClosed   = breaker.Closed
	BreakerOpen     = breaker.Open
	BreakerHalfOpen = breaker.HalfOpen
)

// AgentStats is a snapshot of one agent.
type AgentStats struct {
	ID       string
	Endpoint string
	Policy   string
	Draining bool
	// Instances are the endpoints with connection slots.
	Instances []string

	Breaker       BreakerState
	BreakerOpened uint64 // times the breaker opened

	// InFlight counts events in the pipeline.
	InFlight int64
	// Requests counts events that entered the pipeline; Errors those that
	// returned an error.
	Requests, Errors uint64
	// FailOpen counts events answered allow without the agent.
	FailOpen uint64
	// FlowRejected, LimitRejected and BreakerRejected count events refused
	// by flow control, the concurrency limit and the open breaker.
	FlowRejected, LimitRejected, BreakerRejected uint64
	// AffinityMisses counts events of a request with no pinned connection.
	AffinityMisses uint64
	// StickyOverflow counts sessions not bound because the table was full.
	StickyOverflow uint64
	// ProtocolViolations counts connections closed because the agent broke
	// the protocol (an answer for another request among them:
	// transport.ErrMismatch); Unresponsive those dropped because it sent
	// nothing while events waited (transport.ErrUnresponsive).
	ProtocolViolations, Unresponsive uint64
	// OpenRequests is the number of pinned requests, LostRequests of those
	// whose connection died or that [Pool.CancelAll] cancelled (their
	// remaining events fail), Sessions of sticky sessions.
	OpenRequests, LostRequests, Sessions int
	// Config is the last config push, nil if none.
	Config *ConfigStatus
	// Capabilities is what the ready connections agreed on (see
	// [Capabilities]); each connection's own is in Conns.
	Capabilities *agentv2.AgentCapabilities

	Conns []ConnStats
}

// ConnStats is a snapshot of one connection.
type ConnStats struct {
	ID       string
	Endpoint string
	Reverse  bool
	State    ConnState
	Since    time.Time
	// Health and Load are the agent's last report (Load may be nil).
	Health agentv2.HealthState
	Load   *agentv2.LoadMetrics
	// InFlight counts events holding or waiting for one of the
	// connection's slots (see [SubConn.InFlight]); Limit is its
	// concurrency limit. Transport.InFlight is the transport's own count.
	InFlight int64
	Limit    int
	// Requests and Errors count events sent and those that failed.
	Requests, Errors    uint64
	ConsecutiveFailures int
	// ErrorRate is the decaying recent error rate.
	ErrorRate float64
	// LatencyAvg is the mean over the connection's life, LatencyRecent a
	// decaying average, both of one event in 16 (the first, the 17th...).
	LatencyAvg, LatencyRecent time.Duration
	// Transport is the transport's own view (read now, not pushed).
	Transport transport.Status
	// Capabilities is what the agent declared in this connection's
	// handshake.
	Capabilities *agentv2.AgentCapabilities
}

// Stats returns a snapshot of every agent, sorted by id.
func (p *Pool) Stats() []AgentStats {
	agents := p.agentList()
	out := make([]AgentStats, 0, len(agents))
	for _, a := range agents {
		out = append(out, a.stats())
	}
	return out
}

// AgentStats returns a snapshot of agent id.
func (p *Pool) AgentStats(id string) (AgentStats, error) {
	a := p.lookup(id)
	if a == nil {
		return AgentStats{}, unknownAgent(id)
	}
	return a.stats(), nil
}

func (a *agent) stats() AgentStats {
	br, opened := a.breaker.State()
	s := AgentStats{
		ID:                 a.id,
		Endpoint:           a.endpoint,
		Policy:             a.cfg.builder.Name(),
		Draining:           a.draining.Load(),
		Breaker:            br,
		BreakerOpened:      opened,
		InFlight:           a.events.inFlight(),
		Requests:           a.events.started.Load(),
		Errors:             a.errors.Load(),
		FailOpen:           a.failOpen.Load(),
		FlowRejected:       a.flowRejected.Load(),
		LimitRejected:      a.limitRejected.Load(),
		BreakerRejected:    a.breakerRejected.Load(),
		AffinityMisses:     a.affinityMisses.Load(),
		StickyOverflow:     a.stickyOverflow.Load(),
		ProtocolViolations: a.violations.Load(),
		Unresponsive:       a.unresponsive.Load(),
		OpenRequests:       a.aff.Live(),
		LostRequests:       a.aff.Len() - a.aff.Live(),
		Sessions:           a.sticky.Len(),
		Capabilities:       a.caps.Load().Agreed.CloneVT(),
	}
	if c := a.configState.Load(); c != nil {
		cc := *c
		s.Config = &cc
	}
	a.mu.Lock()
	for ep := range a.instances {
		s.Instances = append(s.Instances, ep)
	}
	conns := append([]*SubConn(nil), a.conns...)
	a.mu.Unlock()
	slices.Sort(s.Instances)
	for _, sc := range conns {
		s.Conns = append(s.Conns, sc.stats())
	}
	return s
}

func (sc *SubConn) stats() ConnStats {
	st := sc.conn.Status()
	req := sc.requests.Load()
	cs := ConnStats{
		ID:                  sc.id,
		Endpoint:            sc.endpoint,
		Reverse:             sc.reverse,
		State:               sc.State(),
		Since:               sc.since,
		Health:              st.Health,
		Load:                st.Load.CloneVT(),
		InFlight:            sc.InFlight(),
		Limit:               sc.slots.Limit(),
		Requests:            req,
		Errors:              sc.errors.Load(),
		ConsecutiveFailures: int(sc.consecutive.Load()),
		ErrorRate:           math.Float64frombits(sc.errRate.Load()),
		LatencyRecent:       time.Duration(sc.latencyEWMA.Load()),
		Transport:           st,
		Capabilities:        sc.conn.Capabilities().CloneVT(),
	}
	if n := sc.sampled.Load(); n > 0 {
		cs.LatencyAvg = time.Duration(sc.latencyNs.Load() / n)
	}
	return cs
}
