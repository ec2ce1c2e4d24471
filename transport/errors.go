package transport

import "errors"

// Sentinel errors, always wrapped in an *agentwire.Error; test with errors.Is.
var (
	// ErrClosed: the connection was closed locally (CodeUnavailable); the
	// pool replaces it.
	ErrClosed = errors.New("transport: connection closed")
	// ErrPeerGone: the agent's side of the connection ended or failed
	// (CodeUnavailable); every call in flight fails with it at once.
	ErrPeerGone = errors.New("transport: agent connection lost")
	// ErrUnresponsive: the agent sent nothing, not even a pong, within
	// [WithLiveness]'s bounds while calls were outstanding
	// (CodeUnavailable). The connection fails and the pool redials.
	ErrUnresponsive = errors.New("transport: agent unresponsive")
	// ErrHandshakeRejected: the agent answered the handshake with
	// success=false (CodeFailedPrecondition).
	ErrHandshakeRejected = errors.New("transport: handshake rejected by agent")
	// ErrIncompatibleVersion: the agent chose a protocol version or encoding
	// the proxy did not offer (CodeFailedPrecondition).
	ErrIncompatibleVersion = errors.New("transport: incompatible protocol version")
	// ErrProtocol: the agent violated the protocol (CodeInternal); the
	// connection is closed.
	ErrProtocol = errors.New("transport: protocol violation")
	// ErrNotEvent: Send was given a message that is not an event
	// (CodeInvalidArgument).
	ErrNotEvent = errors.New("transport: message is not an event")
	// ErrMismatch: the agent answered an event with another request's
	// correlation id, or without the event id it promised to echo. Always
	// with ErrProtocol: the connection fails and no decision of it reaches
	// a caller.
	ErrMismatch = errors.New("transport: response does not match its event")
	// ErrNoDecision: the agent answered with neither a decision nor an
	// error (CodeInternal). The call fails, never as allow; the connection
	// stays.
	ErrNoDecision = errors.New("transport: response carries no decision")
	// ErrUnmatchable: an event of a request whose answers can no longer be
	// matched on this connection, cancelled with answers outstanding or
	// over-answered by an agent that does not echo event ids
	// (CodeFailedPrecondition). Nothing was sent; the pool does not retry.
	ErrUnmatchable = errors.New("transport: request cannot be matched on this connection")
)
