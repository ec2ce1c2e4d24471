package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	iwire "github.com/agentwire/agentwire/internal/wire"
	"google.golang.org/grpc/mem"
)

// encodedMsg is a ProxyToAgent the sender encoded, so that the stream's
// writer only passes bytes on and callers may reuse their message as soon
// as send returns. Its buffer comes from iwire.Buffers and goes back there
// once the RPC library is done with it: grpc-go frees it after writing,
// AppendWire after connect-go copied it.
type encodedMsg []byte

func (e *encodedMsg) free() { iwire.Buffers.Put((*[]byte)(e)) }

var (
	_ iwire.BufferMarshaler = (*encodedMsg)(nil)
	_ iwire.AppendMarshaler = (*encodedMsg)(nil)
)

func (e *encodedMsg) MarshalBuffers() (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.NewBuffer((*[]byte)(e), iwire.Buffers)}, nil
}

func (e *encodedMsg) AppendWire(dst []byte) ([]byte, error) {
	dst = append(dst, *e...)
	e.free()
	return dst, nil
}

// replyTarget is what a gRPC or Connect stream receives an agent message
// into: common decisions decode without the generated decoder
// (decodeResponse), the rest in place from a copy m owns. A message that
// does not decode is kept in err for recv rather than failed to the RPC
// library: grpc-go would turn it into a status of its own making, and
// connect-go would first read to the end of the stream (see
// envelopeGuard).
type replyTarget struct {
	m   *agentv2.AgentToProxy
	err error
}

var _ iwire.Target = (*replyTarget)(nil)

func (r *replyTarget) UnmarshalWire(b []byte) error {
	if decodeResponse(r.m, b) {
		return nil
	}
	r.m.Reset()
	if err := r.m.UnmarshalVTUnsafe(bytes.Clone(b)); err != nil {
		r.err = agentwire.NewError(agentwire.CodeInternal, fmt.Errorf("%w: %w", codec.ErrMalformed, err))
	}
	return nil
}

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
	// called with sendMu held; recvMsg only from the session's reader,
	// with an *agentwire.Error of the library's code (iwire.FromGRPC,
	// iwire.FromConnect).
	sendMsg  func(*encodedMsg) error
	recvMsg  func(*replyTarget) error
	teardown func() error
	// direct lets senders call sendMsg themselves.
	direct bool
	// in is what recv receives into.
	in replyTarget

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

// dialStream opens a gRPC or Connect stream with open and handshakes on
// it. open gets the stream's context, which outlives ctx (ctx bounds only
// the dial and the handshake), adapts w to the stream it opened (sendMsg,
// recvMsg, teardown), and cleans up after itself if it fails.
func dialStream(ctx context.Context, cfg *config, transport string, open func(context.Context, *streamWire) error) (Conn, error) {
	if cfg.handshakeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.handshakeTimeout)
		defer cancel()
	}
	sctx, cancel := context.WithCancel(context.Background())
	opened := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		select {
		case <-opened:
		default:
			cancel()
		}
	})
	w := &streamWire{
		transport:  transport,
		max:        orDefault(cfg.maxFrameSize, codec.DefaultMaxFrameSize),
		queue:      make(chan queuedMsg, streamSendQueue),
		closed:     make(chan struct{}),
		maxPending: orDefault(cfg.maxPending, codec.DefaultMaxPending),
	}
	err := open(sctx, w)
	close(opened)
	stop()
	if err != nil {
		cancel()
		return nil, err
	}
	teardown := w.teardown
	w.teardown = func() error {
		cancel()
		return teardown()
	}
	return startSession(ctx, cfg, w)
}

// orDefault is n, or def for n <= 0.
func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
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

// encode marshals m into a buffer from iwire.Buffers, failing it over
// the size limit.
func (w *streamWire) encode(m *agentv2.ProxyToAgent) (*[]byte, error) {
	return iwire.Marshal(m, w.max)
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

// recv receives the next agent message into m. A stream that ends with
// ResourceExhausted ended over a message larger than a size limit: the
// agent's over ours (grpc-go says so before any codec sees it), or ours
// over the agent's. The framed wires report both as codec.ErrFrameTooLarge,
// a protocol violation, and so does recv.
func (w *streamWire) recv(m *agentv2.AgentToProxy) error {
	w.in = replyTarget{m: m}
	err := w.recvMsg(&w.in)
	w.in.m = nil
	switch {
	case err == nil:
		return w.in.err
	case agentwire.CodeOf(err) == agentwire.CodeResourceExhausted && !errors.Is(err, codec.ErrFrameTooLarge):
		return agentwire.NewError(agentwire.CodeResourceExhausted, fmt.Errorf("%w: %w", codec.ErrFrameTooLarge, err))
	}
	return err
}

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
