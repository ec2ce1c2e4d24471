package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

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

// streamSendQueue is how many encoded messages may wait for a stream's
// writer, within the pending-bytes bound (WithMaxPending); further senders
// wait, honouring their context. 64 covers a pipelined burst.
const streamSendQueue = 64

// streamWire carries envelopes as messages of a bidi RPC (gRPC or Connect):
// senders encode in their own goroutine and queue, one writer sends, so
// that a sender never waits on the RPC library's flow control beyond its
// context.
type streamWire struct {
	transport string
	max       int
	queue     chan *encodedMsg
	closed    chan struct{}
	closeOnce sync.Once
	// sendMsg, recvMsg and teardown adapt a concrete stream (dialStream).
	// Only run calls sendMsg, only the session's reader recvMsg.
	sendMsg  func(*encodedMsg) error
	recvMsg  func(*replyTarget) error
	teardown func() error
	in       replyTarget // what recv receives into

	// maxPending bounds the encoded bytes waiting for the writer, so that
	// an agent that stops reading costs bounded memory however large the
	// messages. A message larger than the bound still goes alone.
	maxPending int
	mu         sync.Mutex // mu guards the following
	pending    int
	// room, when not nil, is closed (and cleared) when the writer hands
	// bytes on; senders waiting for room create it.
	room chan struct{}
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
		queue:      make(chan *encodedMsg, streamSendQueue),
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

var _ wire = (*streamWire)(nil)

func (w *streamWire) send(ctx context.Context, m *agentv2.ProxyToAgent) error {
	e, err := w.encode(m)
	if err != nil {
		return err
	}
	n := len(*e)
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
	case <-ctx.Done():
	}
	w.release(n)
	e.free()
	if ctx.Err() != nil {
		return agentwire.WrapContextError(ctx.Err())
	}
	return agentwire.NewError(agentwire.CodeUnavailable, ErrClosed)
}

// encode marshals m into a buffer from iwire.Buffers, failing it over
// the size limit.
func (w *streamWire) encode(m *agentv2.ProxyToAgent) (*encodedMsg, error) {
	bp, err := iwire.Marshal(m, w.max)
	return (*encodedMsg)(bp), err
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

// sendBatched is send: the stream's writer batches already.
func (w *streamWire) sendBatched(ctx context.Context, m *agentv2.ProxyToAgent) error {
	return w.send(ctx, m)
}

// run is the writer: it sends what senders queued until ctx ends or the
// stream fails. On io.EOF the stream ended, and the reader learns why from
// recv.
func (w *streamWire) run(ctx context.Context) error {
	for {
		var e *encodedMsg
		select {
		case e = <-w.queue:
		case <-ctx.Done():
			return nil
		case <-w.closed:
			return nil
		}
		n := len(*e) // sendMsg frees e
		err := w.sendMsg(e)
		w.release(n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// recv receives the next agent message into m. A stream that ends with
// ResourceExhausted ended over a message larger than a size limit, the
// agent's or ours: as the framed wires do, recv reports it as
// codec.ErrFrameTooLarge, a protocol violation.
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
// message is sent, has written them: it reports errCannotFlush, and Close
// asks the agent instead (see session.Close).
func (w *streamWire) flush(context.Context) error { return errCannotFlush }

// errCannotFlush: the wire cannot wait for its bytes to leave.
var errCannotFlush = errors.New("transport: the wire cannot flush")

// The stream batches on its own terms (see run): it needs no holds, and
// gRPC does not tell what is buffered.
func (w *streamWire) holdBatch()      {}
func (w *streamWire) releaseBatch()   {}
func (w *streamWire) gathering() bool { return false }
func (w *streamWire) buffered() bool  { return false }

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
