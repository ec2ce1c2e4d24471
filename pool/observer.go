package pool

import (
	"context"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Observer receives hooks from the request pipeline and connection
// management, for tracing and metrics packages. Methods are called
// concurrently and must not block. Embed [NopObserver] so that methods
// added later have a default.
type Observer interface {
	// EventStart is called when an event enters the pipeline. The returned
	// context carries on through the pipeline (for example with a span), and
	// the observer may annotate info.Event (for example its traceparent).
	EventStart(ctx context.Context, info EventInfo) context.Context
	// EventEnd is called exactly once for every EventStart.
	EventEnd(ctx context.Context, info EventInfo, res EventResult)
	// FlowControl is called when an event met a connection the agent had
	// paused, after the flow-control mode dealt with it: err is nil when the
	// event went on (after waiting, or skipped with fail-open).
	FlowControl(ctx context.Context, info EventInfo, mode FlowControlMode, waited time.Duration, err error)
	// AffinityMiss is called when an event of a request found no connection
	// pinned for it and was balanced instead.
	AffinityMiss(ctx context.Context, info EventInfo)
	// ConnStateChange is called when a connection changes state.
	ConnStateChange(agentID, connID string, from, to ConnState)
}

// EventInfo identifies an event in [Observer] calls.
type EventInfo struct {
	AgentID       string
	CorrelationID string
	Type          agentv2.EventType
	Event         *agentv2.ProxyToAgent
}

// EventResult is how an event ended.
type EventResult struct {
	// ConnID is the connection it was routed to, empty if none.
	ConnID string
	// Endpoint is that connection's instance endpoint ("unix:///...",
	// "grpc://...", "reverse" for adopted connections), empty if none.
	Endpoint string
	// Response is the decision returned to the caller, nil with Err.
	Response *agentv2.AgentResponse
	// Err is the error returned to the caller.
	Err error
	// FailOpen is true when the pool answered allow without the agent.
	FailOpen bool
	// Duration is the time spent in the pipeline.
	Duration time.Duration
}

// NopObserver implements [Observer] with methods that do nothing.
type NopObserver struct{}

var _ Observer = NopObserver{}

// EventStart returns ctx.
func (NopObserver) EventStart(ctx context.Context, _ EventInfo) context.Context { return ctx }

// EventEnd does nothing.
func (NopObserver) EventEnd(context.Context, EventInfo, EventResult) {}

// FlowControl does nothing.
func (NopObserver) FlowControl(context.Context, EventInfo, FlowControlMode, time.Duration, error) {}

// AffinityMiss does nothing.
func (NopObserver) AffinityMiss(context.Context, EventInfo) {}

// ConnStateChange does nothing.
func (NopObserver) ConnStateChange(string, string, ConnState, ConnState) {}
