package pool

import (
	"slices"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Capabilities is what an agent declared in its handshakes, as agreed by
// its ready connections ([Pool.Capabilities]). When they disagree (a
// rolling upgrade) it is what they all declared: the events every one
// lists, the features every one has, the strictest of their limits. Each
// connection's own declaration is in its [ConnStats].
//
// While no connection is ready the last agreement stays: the agent most
// likely comes back as it left, and [Pool.Ready] says it cannot take
// requests meanwhile.
type Capabilities struct {
	// Agreed is the merged declaration; nil before any connection of the
	// agent was ready. Shared by every caller: do not modify it.
	Agreed *agentv2.AgentCapabilities
	// events has bit t set for each listed event type t below 64; all
	// says no connection listed any.
	events uint64
	all    bool
}

// lastBaseEvent is the last of the eight event kinds every v2 agent knows.
const lastBaseEvent = agentv2.EventType_EVENT_TYPE_CONFIGURE

// Handles reports whether the agent takes events of type t: every ready
// connection listed it. An agent that lists no event types (older agents)
// or whose declaration is unknown takes the eight kinds every v2 agent
// knows, and no kind added since (docs/protocol.md §6).
func (c Capabilities) Handles(t agentv2.EventType) bool {
	switch {
	case c.Agreed == nil || c.all:
		return t > 0 && t <= lastBaseEvent
	case t >= 0 && t < 64:
		return c.events&(1<<t) != 0
	}
	return slices.Contains(c.Agreed.SupportedEvents, t)
}

// Capabilities returns what agent agentID's ready connections agreed on
// (see [Capabilities]): one atomic load, no allocation.
func (p *Pool) Capabilities(agentID string) (Capabilities, error) {
	a := p.lookup(agentID)
	if a == nil {
		return Capabilities{}, unknownAgent(agentID)
	}
	return *a.caps.Load(), nil
}

// agreeLocked publishes the agreement of ready, the ready connections,
// unless there are none (the last agreement stays) or they are the ones
// agreed last. a.mu must be held.
func (a *agent) agreeLocked(ready []*SubConn) {
	if len(ready) == 0 || slices.Equal(ready, a.agreedBy) {
		return
	}
	a.agreedBy = ready
	c := &Capabilities{all: true}
	for _, sc := range ready {
		d := sc.conn.Capabilities()
		if c.Agreed == nil {
			c.Agreed = d.CloneVT()
			if c.Agreed == nil {
				c.Agreed = &agentv2.AgentCapabilities{}
			}
			c.Agreed.SupportedEvents = nil
		} else {
			narrow(c.Agreed, d)
		}
		if evs := d.GetSupportedEvents(); len(evs) > 0 {
			if c.all {
				c.Agreed.SupportedEvents, c.all = slices.Clone(evs), false
			} else {
				c.Agreed.SupportedEvents = slices.DeleteFunc(c.Agreed.SupportedEvents,
					func(t agentv2.EventType) bool { return !slices.Contains(evs, t) })
			}
		}
	}
	for _, t := range c.Agreed.SupportedEvents {
		if t >= 0 && t < 64 {
			c.events |= 1 << t
		}
	}
	a.caps.Store(c)
}

// narrow makes m, a merged declaration, agree with d too: names kept only
// when equal, features only when both have them, the strictest limits.
func narrow(m, d *agentv2.AgentCapabilities) {
	m.ProtocolVersion = min(m.ProtocolVersion, d.GetProtocolVersion())
	m.AgentId, m.Name, m.Version = same(m.AgentId, d.GetAgentId()), same(m.Name, d.GetName()), same(m.Version, d.GetVersion())
	if f, g := m.Features, d.GetFeatures(); f != nil {
		f.StreamingBody = f.StreamingBody && g.GetStreamingBody()
		f.Websocket = f.Websocket && g.GetWebsocket()
		f.Guardrails = f.Guardrails && g.GetGuardrails()
		f.ConfigPush = f.ConfigPush && g.GetConfigPush()
		f.MetricsExport = f.MetricsExport && g.GetMetricsExport()
		f.Cancellation = f.Cancellation && g.GetCancellation()
		f.FlowControl = f.FlowControl && g.GetFlowControl()
		f.HealthReporting = f.HealthReporting && g.GetHealthReporting()
		f.EchoesEventId = f.EchoesEventId && g.GetEchoesEventId()
		f.ConcurrentRequests = strictest(f.ConcurrentRequests, g.GetConcurrentRequests())
	}
	if l := d.GetLimits(); l != nil {
		if m.Limits == nil {
			m.Limits = &agentv2.AgentLimits{}
		}
		m.Limits.MaxBodySize = strictest(m.Limits.MaxBodySize, l.MaxBodySize)
		m.Limits.MaxConcurrency = strictest(m.Limits.MaxConcurrency, l.MaxConcurrency)
		m.Limits.PreferredChunkSize = strictest(m.Limits.PreferredChunkSize, l.PreferredChunkSize)
		m.Limits.MaxMemory = strictestOpt(m.Limits.MaxMemory, l.MaxMemory)
		m.Limits.MaxProcessingTimeMs = strictestOpt(m.Limits.MaxProcessingTimeMs, l.MaxProcessingTimeMs)
	}
	if h := m.HealthConfig; h != nil {
		// The slowest reporter sets the interval the proxy must tolerate.
		h.ReportIntervalMs = max(h.ReportIntervalMs, d.GetHealthConfig().GetReportIntervalMs())
		h.IncludeLoadMetrics = h.IncludeLoadMetrics && d.GetHealthConfig().GetIncludeLoadMetrics()
		h.IncludeResourceMetrics = h.IncludeResourceMetrics && d.GetHealthConfig().GetIncludeResourceMetrics()
	}
}

func same(a, b string) string {
	if a == b {
		return a
	}
	return ""
}

// strictest is the smaller limit, 0 meaning none.
func strictest[T uint32 | uint64](a, b T) T {
	if a == 0 || b != 0 && b < a {
		return b
	}
	return a
}

// strictestOpt is strictest for optional limits, nil meaning none.
func strictestOpt(a, b *uint64) *uint64 {
	if a == nil || b != nil && *b < *a {
		if b != nil {
			v := *b // not shared with the connection's declaration
			return &v
		}
	}
	return a
}
