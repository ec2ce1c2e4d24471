package pool

import (
	"slices"

	"google.golang.org/protobuf/reflect/protoreflect"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Capabilities is what an agent's ready connections declared in their
// handshakes ([Pool.Capabilities]); when they disagree (a rolling upgrade),
// what they all declared: the events all list, the features all have, the
// strictest limits. Each connection's own is in its [ConnStats]. While no
// connection is ready the last agreement stays: the agent most likely
// comes back as it left, and [Pool.Ready] says it is not ready meanwhile.
type Capabilities struct {
	// Agreed is the merged declaration; nil before any connection of the
	// agent was ready. Shared by every caller: do not modify it.
	Agreed *agentv2.AgentCapabilities
	// events has bit t set for each agreed event type t below 64; all: no
	// connection listed any.
	events uint64
	all    bool
}

// lastBaseEvent is the last of the eight event kinds every v2 agent knows.
const lastBaseEvent = agentv2.EventType_EVENT_TYPE_CONFIGURE

// Handles reports whether the agent takes events of type t. One that lists
// no event types (older agents), or is unknown, takes the eight kinds every
// v2 agent knows, and no kind added since (docs/protocol.md §6).
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

// agreeLocked publishes what the ready connections agree on, unless there
// are none or they agreed last time. a.mu must be held.
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
// when equal, the features both have, the strictest limits.
func narrow(m, d *agentv2.AgentCapabilities) {
	m.ProtocolVersion = min(m.ProtocolVersion, d.GetProtocolVersion())
	m.AgentId, m.Name, m.Version = same(m.AgentId, d.GetAgentId()), same(m.Name, d.GetName()), same(m.Version, d.GetVersion())
	if m.Features != nil {
		agreeOn(m.Features.ProtoReflect(), d.GetFeatures().ProtoReflect())
	}
	if m.HealthConfig != nil {
		agreeOn(m.HealthConfig.ProtoReflect(), d.GetHealthConfig().ProtoReflect())
	}
	if d.GetLimits() != nil {
		if m.Limits == nil {
			m.Limits = &agentv2.AgentLimits{}
		}
		agreeOn(m.Limits.ProtoReflect(), d.GetLimits().ProtoReflect())
	}
}

// agreeOn keeps in m, field by field, what d declares too: a flag only if
// both set it, of two numbers (limits, counts) the smaller, 0 meaning none.
func agreeOn(m, d protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch fd.Kind() {
		case protoreflect.BoolKind:
			if !d.Get(fd).Bool() {
				m.Clear(fd)
			}
		case protoreflect.Uint32Kind:
			if v := strictest(m.Get(fd).Uint(), d.Get(fd).Uint()); v != 0 {
				m.Set(fd, protoreflect.ValueOfUint32(uint32(v)))
			}
		case protoreflect.Uint64Kind:
			if v := strictest(m.Get(fd).Uint(), d.Get(fd).Uint()); v != 0 {
				m.Set(fd, protoreflect.ValueOfUint64(v))
			}
		}
	}
}

func same(a, b string) string {
	if a == b {
		return a
	}
	return ""
}

// strictest is the smaller limit, 0 meaning none.
func strictest(a, b uint64) uint64 {
	if a == 0 || b != 0 && b < a {
		return b
	}
	return a
}
