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
	// Send sends one event (any event case of ProxyToAgent), with an
	// event_id the Conn assigns, and waits for the agent's decision, until
	// ctx's deadline or the Conn's call timeout. Errors are
	// *agentwire.Error: Unavailable when the connection dropped,
	// Canceled/DeadlineExceeded for the context, ResourceExhausted for an
	// oversize event, and the agent's own code when it reported a failure.
	// The returned response belongs to the caller.
	Send(ctx context.Context, event *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error)

	// Cancel tells the agent to abandon req's correlation id (every
	// request for "") and fails the calls waiting on it with Canceled. It
	// sends req as given (a copy timestamped now if its timestamp is
	// zero), and neither modifies it nor keeps it.
	Cancel(ctx context.Context, req *agentv2.CancelRequest) error

	// Notify sends a message that has no decision (drain, shutdown, config
	// responses) and returns once it is queued.
	Notify(ctx context.Context, msg *agentv2.ProxyToAgent) error

	// Ping measures the round-trip time to the agent.
	Ping(ctx context.Context) (time.Duration, error)

	// Capabilities returns what the agent declared in the handshake.
	Capabilities() *agentv2.AgentCapabilities

	// Status returns a snapshot of the connection and the agent's last
	// health report.
	Status() Status

	// Paused reports whether the agent has paused new events for
	// correlationID, or the whole connection.
	Paused(correlationID string) bool

	// WaitResume blocks until no pause applies to correlationID, the
	// connection closes, or ctx ends.
	WaitResume(ctx context.Context, correlationID string) error

	// Done is closed when the connection has failed or been closed, before
	// the calls it fails hear of it.
	Done() <-chan struct{}

	// Err returns why the connection ended, or nil while it is open.
	Err() error

	// Close fails every in-flight call with Unavailable, closes the
	// connection and waits, honouring ctx, for its goroutines. Idempotent.
	Close(ctx context.Context) error
}

// State is a connection's lifecycle state, the one state enum of a
// connection (a pool adds only its own flags, see pool.ConnState). The
// connection pushes it, with its [Status], to [WithStatusHandler]'s listener.
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

var stateNames = [...]string{StateReady: "ready", StatePaused: "paused", StateDraining: "draining",
	StateUnhealthy: "unhealthy", StateClosed: "closed"}

func (s State) String() string {
	if s < StateReady || s > StateClosed {
		return "unknown"
	}
	return stateNames[s]
}

// Status is a point-in-time view of a connection.
type Status struct {
	State State
	// Health is the agent's last report (HEALTH_STATE_UNSPECIFIED before
	// the first), Load the load it reported with it, HealthAt its arrival.
	Health   agentv2.HealthState
	Load     *agentv2.LoadMetrics
	HealthAt time.Time
	// InFlight is the number of calls waiting for a decision.
	InFlight int
	// RTT is the last measured ping round trip (zero if never measured).
	RTT time.Duration
	// UnknownResponses is LateResponses + DuplicateResponses.
	UnknownResponses uint64
	// LateResponses counts dropped answers to events whose caller gave up;
	// DuplicateResponses those to events already answered, or beyond a
	// request's events.
	LateResponses, DuplicateResponses uint64
	// LogsDropped counts agent log lines over [WithAgentLogLimit]'s rate.
	LogsDropped uint64
	// UnknownFrames counts frames of types this version does not know.
	UnknownFrames uint64
}
