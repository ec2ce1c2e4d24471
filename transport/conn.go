package transport

import (
	"context"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Conn is one proxy-side connection to an agent, whatever the transport. It
// multiplexes many in-flight events; responses are matched by event id when
// the agent echoes it, otherwise by correlation id in send order.
//
// A Conn is safe for concurrent use by multiple goroutines.
type Conn interface {
	// Send sends one event (any event case of ProxyToAgent: request or
	// response headers, body chunks, request complete, websocket frame,
	// guardrail, configure) and waits for the agent's decision. The event's
	// event_id is assigned by the Conn. The call ends at ctx's deadline or
	// the Conn's default timeout, whichever is sooner. Errors are
	// *agentwire.Error: Unavailable when the connection dropped,
	// Canceled/DeadlineExceeded for the context, ResourceExhausted for an
	// oversize event, and the agent's own code when it reported a failure.
	// The returned response belongs to the caller.
	Send(ctx context.Context, event *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error)

	// Cancel tells the agent to abandon correlationID and fails the calls
	// waiting on it with Canceled. An empty correlationID cancels every
	// request on the connection.
	Cancel(ctx context.Context, correlationID string, reason agentv2.CancelReason) error

	// Notify sends a message that has no decision: drain, shutdown,
	// config responses. It returns once the message is queued.
	Notify(ctx context.Context, msg *agentv2.ProxyToAgent) error

	// Ping measures the round-trip time to the agent.
	Ping(ctx context.Context) (time.Duration, error)

	// Capabilities returns what the agent declared in the handshake.
	Capabilities() *agentv2.AgentCapabilities

	// Status returns a snapshot of the connection's state and the agent's
	// last health report.
	Status() Status

	// Paused reports whether the agent has paused new events for
	// correlationID (or for the whole connection, checked for any id).
	Paused(correlationID string) bool

	// WaitResume blocks until the pause that applies to correlationID is
	// lifted, the connection closes, or ctx ends. It returns at once when
	// nothing is paused.
	WaitResume(ctx context.Context, correlationID string) error

	// Done is closed when the connection has failed or been closed, before
	// the calls it fails hear of it.
	Done() <-chan struct{}

	// Err returns why the connection ended, or nil while it is open.
	Err() error

	// Close cancels every in-flight call with Unavailable, closes the
	// connection and waits, honouring ctx, for its goroutines to exit.
	// Close is idempotent.
	Close(ctx context.Context) error
}

// State is a connection's lifecycle state, as the transport sees it. It is
// the one state enum of a connection: a pool adds only its own flags on
// top (see pool.ConnState). The connection pushes it, with the rest of
// its [Status], to the listener given with [WithStatusHandler].
type State int

const (
	// StateReady: open and accepting events.
	StateReady State = iota + 1
	// StatePaused: the agent asked for a connection-wide pause.
	StatePaused
	// StateDraining: the agent reported draining; send no new requests.
	StateDraining
	// StateUnhealthy: the agent reported itself unhealthy.
	StateUnhealthy
	// StateClosed: the connection is gone.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateReady:
		return "ready"
	case StatePaused:
		return "paused"
	case StateDraining:
		return "draining"
	case StateUnhealthy:
		return "unhealthy"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// Status is a point-in-time view of a connection.
type Status struct {
	State State
	// Health is the agent's own last report (HEALTH_STATE_UNSPECIFIED before
	// the first), and Load the load it reported with it, if any.
	Health agentv2.HealthState
	Load   *agentv2.LoadMetrics
	// HealthAt is when the last report arrived (zero if none).
	HealthAt time.Time
	// InFlight is the number of calls waiting for a decision.
	InFlight int
	// RTT is the last measured ping round trip (zero if never measured).
	RTT time.Duration
	// UnknownResponses counts responses that matched no waiting call: the
	// sum of LateResponses and DuplicateResponses.
	UnknownResponses uint64
	// LateResponses counts answers to events whose caller had given up
	// (deadline, cancel); DuplicateResponses counts answers to events
	// already answered, or more answers than a request had events. Both
	// are dropped.
	LateResponses, DuplicateResponses uint64
	// LogsDropped counts agent log lines over the rate limit
	// ([WithAgentLogLimit]).
	LogsDropped uint64
	// UnknownFrames counts frames of types this version does not know.
	UnknownFrames uint64
}
