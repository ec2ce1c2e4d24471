package agent

import (
	"context"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// stream is one connection's message transport as the session core sees
// it. The framed, gRPC and Connect transports implement it.
type stream interface {
	// Recv returns the next message, which the session then owns (events go
	// back through Release once answered). Only the session's reader calls
	// it. It returns errHalfClosed when the peer finished sending but still
	// reads, an error wrapping codec.ErrUnknownFrameType for a frame to
	// skip, and any other error when the connection is over.
	Recv() (*agentv2.ProxyToAgent, error)
	// Release takes back an event Recv returned once the session is done
	// with it (answered and encoded): the stream may reuse its memory.
	Release(m *agentv2.ProxyToAgent)
	// Send sends m, waiting at most until ctx ends. It is safe for
	// concurrent use; m must not be changed afterwards.
	Send(ctx context.Context, m *agentv2.AgentToProxy) error
	// CloseRecv makes Recv return soon, without dropping messages already
	// sent: the graceful end of a connection.
	CloseRecv()
	// Abort ends the connection now. Recv and Send fail soon after.
	// CloseRecv and Abort are safe to call concurrently and more than once.
	Abort()
}

// lendingStream is implemented by streams whose events can borrow the
// read buffer (the framed stream): valid only until the reader reads on.
type lendingStream interface {
	// lend makes the events of the following Recvs borrow the buffer.
	lend()
	// own makes the event the last Recv returned hold its own memory: for
	// events that wait for a worker. It returns the event to use instead.
	own(m *agentv2.ProxyToAgent) (*agentv2.ProxyToAgent, error)
	// renew gives the reader new buffers, leaving the old ones to a
	// handler that still runs while another goroutine reads on.
	renew()
}

// burstStream is implemented by streams that can tell whether the next
// message is already in memory and hold answers back until told to write
// (the framed stream): the reader then answers a burst of events with one
// system call, as a plain request-reply server would.
type burstStream interface {
	// InputBuffered reports whether Recv would return without waiting.
	InputBuffered() bool
	// SendHeld queues m until the next ReleaseHeld (or any other write).
	SendHeld(ctx context.Context, m *agentv2.AgentToProxy) error
	// ReleaseHeld writes what SendHeld queued.
	ReleaseHeld() error
}

// batchSender is implemented by streams that can hold a message back to
// share a system call with the next ones (the framed stream).
type batchSender interface {
	SendBatched(ctx context.Context, m *agentv2.AgentToProxy) error
}
