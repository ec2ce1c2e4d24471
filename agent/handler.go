package agent

import (
	"context"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Handler decides on the events of a proxy. Its methods are called
// concurrently, but never for two events of one correlation id, which
// arrive in the order the proxy sent them. Implementations must be safe for
// concurrent use.
//
// The event methods, one per event case of the schema, come from the
// generated [agentv2.EventHandler]. A nil response means allow; an error is
// sent as AgentResponse.error with the code [agentwire.CodeOf] gives, the
// response discarded. The server fills in the ids on a copy, never writing
// to a returned response, so one response may answer any number of events.
// The event and ctx belong to the call: do not keep them. ctx is cancelled
// when the proxy cancels the request or the connection ends;
// [PeerFromContext] returns the connection. Configure's error, or allow,
// answers a configuration push.
//
// Embed [Base] to implement only the methods you need.
type Handler interface {
	agentv2.EventHandler

	// Drain tells the agent that the proxy sends no new requests on this
	// connection. The server already reports HEALTH_STATE_DRAINING.
	Drain(ctx context.Context, req *agentv2.DrainRequest)
	// Shutdown tells the agent that the proxy is going away.
	Shutdown(ctx context.Context, req *agentv2.ShutdownRequest)
}

// Base implements [Handler] by allowing every event and ignoring
// configuration, drain and shutdown; its event methods are the generated
// [agentv2.UnimplementedEventHandler]'s, so embedders keep compiling when
// the schema gains an event.
type Base struct {
	agentv2.UnimplementedEventHandler
}

var _ Handler = Base{}

// Drain does nothing.
func (Base) Drain(context.Context, *agentv2.DrainRequest) {}

// Shutdown does nothing.
func (Base) Shutdown(context.Context, *agentv2.ShutdownRequest) {}

// MetricsReporter is implemented by handlers that export their own
// metrics, sent on every connection at the health interval (nil: nothing).
// Metrics is called concurrently.
type MetricsReporter interface {
	Metrics(ctx context.Context) *agentv2.MetricsReport
}

// HealthReporter is implemented by handlers that know their own health,
// asked at every report (UNSPECIFIED: HEALTHY). A draining connection
// reports DRAINING regardless.
type HealthReporter interface {
	Health(ctx context.Context) agentv2.HealthState
}
