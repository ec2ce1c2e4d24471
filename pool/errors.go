package pool

import (
	"errors"

	"github.com/agentwire/agentwire/pool/balancer"
)

// Sentinel errors, always wrapped in an *agentwire.Error whose code is given
// below; test with errors.Is. Each says what the caller should do.
var (
	// ErrUnknownAgent: no agent has this id (CodeNotFound).
	ErrUnknownAgent = errors.New("pool: unknown agent")
	// ErrAgentExists: AddAgent with an id already in the pool (CodeAlreadyExists).
	ErrAgentExists = errors.New("pool: agent already exists")
	// ErrNoConnAvailable: the agent has no connection that may take a new
	// request right now (CodeUnavailable). The pool is reconnecting; apply
	// the agent's failure policy to this request.
	ErrNoConnAvailable = balancer.ErrNoSubConn
	// ErrCircuitOpen: the agent's circuit breaker is open (CodeUnavailable);
	// requests fail fast until its cool-down ends and a probe succeeds.
	ErrCircuitOpen = errors.New("pool: circuit breaker open")
	// ErrPaused: the agent asked for no more events (flow control) and the
	// pool's flow-control mode rejected the event (CodeResourceExhausted).
	ErrPaused = errors.New("pool: agent paused the connection")
	// ErrConcurrencyLimit: the connection's concurrency limit stayed
	// reached for the whole queue wait (CodeResourceExhausted).
	ErrConcurrencyLimit = errors.New("pool: connection concurrency limit reached")
	// ErrAffinityLost: the connection that received the request's headers
	// is gone, and with it the agent's state for the request
	// (CodeFailedPrecondition). The rest of the request cannot be inspected
	// by this agent; apply its failure policy.
	ErrAffinityLost = errors.New("pool: the connection holding the request is gone")
	// ErrAffinityFull: the agent's table of open requests is full
	// (CodeResourceExhausted); the request is refused rather than spread
	// over connections that do not know it.
	ErrAffinityFull = errors.New("pool: too many open requests")
	// ErrUnknownRequest: Cancel for a correlation id with no open request on
	// the agent (CodeNotFound).
	ErrUnknownRequest = errors.New("pool: no open request with this correlation id")
	// ErrDraining: the pool or agent is draining and takes no new requests
	// (CodeUnavailable). Events of requests already open still go through.
	ErrDraining = errors.New("pool: draining")
	// ErrClosed: the pool was shut down (CodeUnavailable).
	ErrClosed = errors.New("pool: closed")
	// ErrReverseLimit: AdoptConn when the agent already has its maximum of
	// reverse connections (CodeResourceExhausted). The caller keeps and
	// should close the connection.
	ErrReverseLimit = errors.New("pool: too many reverse connections for agent")
)
