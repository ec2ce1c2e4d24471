package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

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
// further senders wait, honouring their context. Each slot costs 16 bytes
// of every connection, idle or not; 64 covers a pipelined burst.
const streamSendQueue = 64

// streamWire carries envelopes as messages of a bidi RPC (gRPC or Connect):
// senders encode in their own goroutine and queue, one writer sends. On
// gRPC, a sender sends itself when nothing is queued and grpc-go cannot
// make it wait (see directBudget): no goroutine hand-off per message.
type streamWire struct {
	transport string
	max       int
	queue     chan queuedMsg
	closed    chan struct{}
	closeOnce sync.Once
	// sendMsg, recvMsg and teardown adapt a concrete stream. sendMsg is
	// called with sendMu held; recvMsg only from the session's reader.
	sendMsg  func(*encodedMsg) error
	recvMsg  func(*agentv2.AgentToProxy) error
	teardown func() error
	// direct lets senders call sendMsg themselves.
	direct bool
	// sizes holds the largest message of each frame type sized first
	// (see encode), by type modulo its length.
	sizes [16]atomic.Int32

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

	// queued counts messages handed to the writer and not yet sent: a
	// sender may go direct only when it is zero, so messages keep their
	// order.
	queued atomic.Int64
	// acked is the stream position up to which bytes are known to have
	// reached the agent: the end of the last message it answered.
	acked atomic.Uint64

	sendMu sync.Mutex // sendMu is held around sendMsg and guards the following
	// sent is the stream position: bytes handed to sendMsg so far, each
	// message counted with its 5-byte gRPC prefix.
	sent uint64

	endsMu sync.Mutex // endsMu guards the following
	// ends records, by event id modulo its size, where each event ends in
	// the stream, for answered; allocated by the first event sent.
	ends *[streamEnds]struct{ id, end uint64 }
}

// queuedMsg is a message waiting for the writer.
type queuedMsg struct {
	e  *encodedMsg
	id uint64 // event id, 0 for other messages
}

// directBudget bounds the bytes a sender may have in flight (handed to
// grpc-go and not yet known to have reached the agent) and still send
// itself. grpc-go makes SendMsg wait only when a stream's write quota (64
// KiB, replenished as its writer puts bytes on the connection) is used
// up; every byte up to the end of an answered event has left, so with
// less than the quota in flight, SendMsg cannot wait, and a direct sender
// cannot outlive its context. Above it, messages take the queue and the
// writer goroutine waits for the agent instead.
const directBudget = 48 << 10

// streamEnds is how many events' positions a stream remembers: more than
// are usually in flight on one connection, or answers would find theirs
// overwritten and the acknowledged position would lag.
const streamEnds = 128

// grpcPrefix is the size of gRPC's message prefix.
const grpcPrefix = 5

var _ wire = (*streamWire)(nil)

func (w *streamWire) send(ctx context.Context, m *agentv2.ProxyToAgent) error {
	bp, err := w.encode(m)
	if err != nil {
		return err
	}
	n := len(*bp)
	q := queuedMsg{e: (*encodedMsg)(bp), id: m.GetEventId()}
	if w.direct && w.queued.Load() == 0 && w.sendMu.TryLock() {
		if w.queued.Load() == 0 && w.sent+uint64(n+grpcPrefix)-w.acked.Load() <= directBudget {
			err := w.sendLocked(q)
			w.sendMu.Unlock()
			if err != nil && !errors.Is(err, io.EOF) {
				return agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("%w: %w", ErrPeerGone, err))
			}
			// On io.EOF the stream ended: as with the writer, the reader
			// learns why from recv and fails the connection with it.
			return nil
		}
		w.sendMu.Unlock()
	}
	if err := w.reserve(ctx, n); err != nil {
		q.e.free()
		return err
	}
	w.queued.Add(1)
	select {
	case w.queue <- q:
		return nil
	default:
	}
	select {
	case w.queue <- q:
		return nil
	case <-w.closed:
	case <-ctx.Done():
	}
	w.queued.Add(-1)
	w.release(n)
	q.e.free()
	if ctx.Err() != nil {
		return agentwire.WrapContextError(ctx.Err())
	}
	return agentwire.NewError(agentwire.CodeUnavailable, ErrClosed)
}

// encode marshals m into a buffer from messageBuffers. Like codec.Writer,
// it first marshals without computing the size: at the end of a buffer of
// the smallest class (vtprotobuf marshals back to front; a buffer too
// small makes it index out of range, which is recovered), then moves the
// bytes to the front. Types seen too large for that buffer are sized
// first.
func (w *streamWire) encode(m *agentv2.ProxyToAgent) (*[]byte, error) {
	t := m.FrameType()
	size := &w.sizes[int(t)%len(w.sizes)]
	if int(size.Load()) <= 1<<minMsgClass {
		bp := messageBuffers.Get(1 << minMsgClass)
		buf := *bp
		n, fits, err := marshalTail(m, buf)
		switch {
		case fits && err == nil:
			if err := w.checkSize(n); err != nil {
				messageBuffers.Put(bp)
				return nil, err
			}
			copy(buf, buf[len(buf)-n:])
			*bp = buf[:n]
			return bp, nil
		case fits:
			messageBuffers.Put(bp)
			return nil, agentwire.NewError(agentwire.CodeInvalidArgument, err)
		}
		messageBuffers.Put(bp)
	}
	n := m.SizeVT()
	if err := w.checkSize(n); err != nil {
		return nil, err
	}
	if n > int(size.Load()) {
		size.Store(int32(n))
	}
	bp := messageBuffers.Get(n)
	if _, err := m.MarshalToSizedBufferVT((*bp)[:n]); err != nil {
		messageBuffers.Put(bp)
		return nil, agentwire.NewError(agentwire.CodeInvalidArgument, err)
	}
	return bp, nil
}

// checkSize fails a message of n bytes over the size limit.
func (w *streamWire) checkSize(n int) error {
	if w.max > 0 && n > w.max {
		return agentwire.NewError(agentwire.CodeResourceExhausted,
			fmt.Errorf("%w: message of %d bytes, limit %d", codec.ErrFrameTooLarge, n, w.max))
	}
	return nil
}

// marshalTail marshals m at the end of dst; fits is false when dst was
// too small.
func marshalTail(m *agentv2.ProxyToAgent, dst []byte) (n int, fits bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(runtime.Error); !ok {
				panic(r)
			}
			n, fits, err = 0, false, nil
		}
	}()
	n, err = m.MarshalToSizedBufferVT(dst)
	return n, true, err
}

// sendLocked sends q, recording where it ends; w.sendMu is held.
func (w *streamWire) sendLocked(q queuedMsg) error {
	w.sent += uint64(len(*q.e) + grpcPrefix)
	if q.id != 0 {
		w.endsMu.Lock()
		if w.ends == nil {
			w.ends = new([streamEnds]struct{ id, end uint64 })
		}
		w.ends[q.id%streamEnds] = struct{ id, end uint64 }{q.id, w.sent}
		w.endsMu.Unlock()
	}
	return w.sendMsg(q.e)
}

// answered notes that the agent answered event id: every byte up to the
// event's end has reached it.
func (w *streamWire) answered(id uint64) {
	w.endsMu.Lock()
	if w.ends != nil {
		if e := w.ends[id%streamEnds]; e.id == id && e.end > w.acked.Load() {
			w.acked.Store(e.end)
		}
	}
	w.endsMu.Unlock()
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
		var q queuedMsg
		select {
		case q = <-w.queue:
		default:
		}
		if q.e == nil {
			select {
			case q = <-w.queue:
			case <-ctx.Done():
				return nil
			case <-w.closed:
				return nil
			}
		}
		n := len(*q.e) // sendMsg may free q.e
		w.sendMu.Lock()
		err := w.sendLocked(q)
		w.queued.Add(-1)
		w.sendMu.Unlock()
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

// flush cannot tell when the RPC library, which owns the bytes once a
// message is sent, has written them, and its close path does not promise
// to deliver them: it reports errCannotFlush, and Close asks the agent
// instead (see session.Close).
func (w *streamWire) flush(context.Context) error { return errCannotFlush }

// errCannotFlush: the wire cannot wait for its bytes to leave.
var errCannotFlush = errors.New("transport: the wire cannot flush")

// The stream batches on its own terms (see run): it needs no holds.
func (w *streamWire) holdBatch()      {}
func (w *streamWire) releaseBatch()   {}
func (w *streamWire) gathering() bool { return false }

// buffered reports false: gRPC does not tell, and only the holds use it.
func (w *streamWire) buffered() bool { return false }

func (w *streamWire) close() error {
	var err error
	w.closeOnce.Do(func() {
		close(w.closed)
		err = w.teardown()
		// Free what never went out.
		for {
			select {
			case q := <-w.queue:
				q.e.free()
			default:
				return
			}
		}
	})
	return err
}

func (w *streamWire) name() string { return w.transport }
