package transport

import (
	"context"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// wire is what a transport provides to the shared session core: a way to
// move envelopes. Everything else (matching, signals, failure) is the
// session's, so all transports behave alike.
type wire interface {
	// send transmits one message, or queues it for transmission; it encodes
	// m before returning, so the caller may reuse m. Safe for concurrent use.
	send(ctx context.Context, m *agentv2.ProxyToAgent) error
	// sendBatched is send for a message with others right behind it: the
	// wire may hold it back to share a system call.
	sendBatched(ctx context.Context, m *agentv2.ProxyToAgent) error
	// recv reads the next message into m. Only the session's reader calls it.
	// An error wrapping codec.ErrUnknownFrameType is not fatal.
	recv(m *agentv2.AgentToProxy) error
	// run does the wire's background writing until ctx ends; it returns
	// at once if the wire needs no such goroutine.
	run(ctx context.Context) error
	// flush waits, honouring ctx, until what was sent so far has been
	// handed to the operating system, or returns errCannotFlush at once if
	// the wire cannot tell.
	flush(ctx context.Context) error
	// holdBatch tells the wire that more events are coming from
	// goroutines about to run (the senders a batch of responses woke);
	// releaseBatch ends one hold, and the last one lets what waits go out.
	holdBatch()
	// gathering reports whether a hold is out, so a send now would join
	// the batch being gathered.
	gathering() bool
	releaseBatch()
	// buffered reports whether the next recv will return without waiting
	// for the peer. Only the session's reader calls it.
	buffered() bool
	// close tears the wire down and unblocks recv and send.
	close() error
	// name is the transport's name for logs and metrics.
	name() string
}
