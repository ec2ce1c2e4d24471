package transport

import "errors"

// Sentinel errors, always wrapped in an *agentwire.Error; test with errors.Is.
var (
	// ErrClosed: the connection was closed locally (CodeUnavailable). The
	// pool replaces the connection.
	ErrClosed = errors.New("transport: connection closed")
	// ErrPeerGone: the agent's side of the connection ended or failed
	// (CodeUnavailable). Every call in flight fails with it at once.
	ErrPeerGone = errors.New("transport: agent connection lost")
	// ErrUnresponsive: the agent sent nothing, not even a pong, for the
	// liveness interval and timeout while calls were outstanding
	// (CodeUnavailable; see WithLiveness). The connection is closed, every
	// call in flight fails with it at once, and the pool redials.
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
	// wrapped with ErrProtocol: the connection is closed and every call on
	// it fails; no decision of it reaches a caller.
	ErrMismatch = errors.New("transport: response does not match its event")
	// ErrNoDecision: the agent answered an event with neither a decision
	// nor an error (CodeInternal). The call fails; the connection stays.
	// Never treat it as allow.
	ErrNoDecision = errors.New("transport: response carries no decision")
	// ErrUnmatchable: an event of a request whose answers can no longer be
	// matched on this connection (CodeFailedPrecondition): the request was
	// cancelled with answers outstanding, or the agent answered it more
	// often than asked, and the agent does not echo event ids. Nothing was
	// sent; the pool does not retry it.
	ErrUnmatchable = errors.New("transport: request cannot be matched on this connection")
)
