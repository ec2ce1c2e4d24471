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
)
