package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// encodedMsg is a ProxyToAgent already encoded by the sender, so that the
// stream's single writer goroutine only copies bytes and callers may reuse
// their message as soon as send returns. Its memory comes from
// messageBuffers; the gRPC codec hands it to grpc-go, which returns it
// there.
type encodedMsg []byte

func (e *encodedMsg) free() { messageBuffers.Put((*[]byte)(e)) }

// streamSendQueue is how many encoded messages may wait for a message
// stream's writer, within the pending-bytes bound (WithMaxPending);
// further senders wait, honouring their context.
const streamSendQueue = 256

// streamWire carries envelopes as messages of a bidi RPC (gRPC or Connect):
// senders encode in their own goroutine and queue, one writer sends.
type streamWire struct {
	transport string
	max       int
	queue     chan *encodedMsg
	closed    chan struct{}
	closeOnce sync.Once
	// sendMsg, recvMsg and teardown adapt a concrete stream. sendMsg is only
	// called from run; recvMsg only from the session's reader.
	sendMsg  func(*encodedMsg) error
	recvMsg  func(*agentv2.AgentToProxy) error
	teardown func() error

	// maxPending bounds the encoded bytes waiting for the writer, so that
	// an agent that stops reading costs bounded memory however large the
	// messages (the queue alone bounds only their number). A message
	// larger than the bound still goes when nothing else waits.
	maxPending int
	mu         sync.Mutex // mu guards the following
	pending    int
	// room, when not nil, is closed (and cleared) when the writer hands
	// bytes on; senders waiting for room create it.
	room chan struct{}
}

var _ wire = (*streamWire)(nil)

func (w *streamWire) send(ctx context.Context, m *agentv2.ProxyToAgent) error {
	n := m.SizeVT()
	if w.max > 0 && n > w.max {
		return agentwire.NewError(agentwire.CodeResourceExhausted,
			fmt.Errorf("%w: message of %d bytes, limit %d", codec.ErrFrameTooLarge, n, w.max))
	}
	bp := messageBuffers.Get(n)
	if _, err := m.MarshalToSizedBufferVT((*bp)[:n]); err != nil {
		messageBuffers.Put(bp)
		return agentwire.NewError(agentwire.CodeInvalidArgument, err)
	}
	*bp = (*bp)[:n]
	e := (*encodedMsg)(bp)
	if err := w.reserve(ctx, n); err != nil {
		e.free()
		return err
	}
	select {
	case w.queue <- e:
		return nil
	default:
	}
	select {
	case w.queue <- e:
		return nil
	case <-w.closed:
		w.release(n)
		e.free()
		return agentwire.NewError(agentwire.CodeUnavailable, ErrClosed)
	case <-ctx.Done():
		w.release(n)
		e.free()
		return agentwire.WrapContextError(ctx.Err())
	}
}

// reserve waits, honouring ctx, until n more bytes fit under maxPending.
func (w *streamWire) reserve(ctx context.Context, n int) error {
	for {
		w.mu.Lock()
		if w.pending == 0 || w.maxPending <= 0 || w.pending+n <= w.maxPending {
			w.pending += n
			w.mu.Unlock()
			return nil
		}
		if w.room == nil {
			w.room = make(chan struct{})
		}
		room := w.room
		w.mu.Unlock()
		select {
		case <-room:
		case <-w.closed:
			return agentwire.NewError(agentwire.CodeUnavailable, ErrClosed)
		case <-ctx.Done():
			return agentwire.WrapContextError(ctx.Err())
		}
	}
}

// release returns n bytes reserved by a sender and wakes waiting senders.
func (w *streamWire) release(n int) {
	w.mu.Lock()
	w.pending -= n
	if w.room != nil {
		close(w.room)
		w.room = nil
	}
	w.mu.Unlock()
}

// sendBatched is send: the stream's writer goroutine batches already.
func (w *streamWire) sendBatched(ctx context.Context, m *agentv2.ProxyToAgent) error {
	return w.send(ctx, m)
}

func (w *streamWire) run(ctx context.Context) error {
	for {
		var e *encodedMsg
		select {
		case e = <-w.queue:
		default:
		}
		if e == nil {
			select {
			case e = <-w.queue:
			case <-ctx.Done():
				return nil
			case <-w.closed:
				return nil
			}
		}
		n := len(*e) // sendMsg may free e
		err := w.sendMsg(e)
		w.release(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				// The stream ended; the reader learns why from recv.
				return nil
			}
			return err
		}
	}
}

func (w *streamWire) recv(m *agentv2.AgentToProxy) error { return w.recvMsg(m) }

// flush returns at once: the RPC library owns the bytes once a message is
// sent, and its close path does not promise to deliver them.
func (w *streamWire) flush(context.Context) error { return nil }

func (w *streamWire) close() error {
	var err error
	w.closeOnce.Do(func() {
		close(w.closed)
		err = w.teardown()
		// Free what never went out.
		for {
			select {
			case e := <-w.queue:
				e.free()
			default:
				return
			}
		}
	})
	return err
}

func (w *streamWire) name() string { return w.transport }
