package agent

import (
	"context"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Handler decides on the events of a proxy. The server calls its methods
// concurrently from many goroutines, but never concurrently for two events
// of the same correlation id: those arrive one after another in the order
// the proxy sent them. Implementations must be safe for concurrent use.
//
// An event method returns the decision for its event. A nil response means
// "allow". A non-nil error is sent to the proxy as AgentResponse.error with
// the code [agentwire.CodeOf] gives (use [agentwire.NewError] to pick one),
// and the response is then discarded. The server sets the correlation id
// and event id of what it sends itself, on a copy: it never writes to a
// response a handler returned, so a handler may answer any number of
// events, from any number of goroutines, with one response built once
// (as long as nobody changes it). The event and its context belong to the
// call: do not keep them after it returns.
//
// ctx is cancelled when the proxy cancels the request (or every request),
// or when the connection ends. [PeerFromContext] returns the connection.
//
// The event methods, one per event case of the schema, come from the
// generated [agentv2.EventHandler]; Configure among them applies
// configuration the proxy pushed, and the proxy gets an allow response on
// success and the error otherwise.
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
// configuration, drain and shutdown. Embed it and override what you need;
// its event methods are the generated [agentv2.UnimplementedEventHandler]'s,
// so a handler that embeds it keeps compiling when the schema gains an event.
type Base struct {
	agentv2.UnimplementedEventHandler
}

var _ Handler = Base{}

// Drain does nothing.
func (Base) Drain(context.Context, *agentv2.DrainRequest) {}

// Shutdown does nothing.
func (Base) Shutdown(context.Context, *agentv2.ShutdownRequest) {}

// MetricsReporter is implemented by handlers that export their own metrics.
// The server sends the report on every connection at the health interval;
// a nil report sends nothing. Metrics is called concurrently.
type MetricsReporter interface {
	Metrics(ctx context.Context) *agentv2.MetricsReport
}

// HealthReporter is implemented by handlers that know their own health. The
// server calls Health at every report; without it, or when it returns
// HEALTH_STATE_UNSPECIFIED, the agent reports HEALTH_STATE_HEALTHY. A
// draining connection always reports HEALTH_STATE_DRAINING.
type HealthReporter interface {
	Health(ctx context.Context) agentv2.HealthState
}
