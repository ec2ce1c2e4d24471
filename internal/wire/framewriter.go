package wire

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
)

// ErrWriterClosed: the [FrameWriter] stopped or its connection failed
// (CodeUnavailable); it fails every later write.
var ErrWriterClosed = errors.New("wire: writer closed")

// FrameWriter writes codec frames from many goroutines into one stream,
// for both sides' framed connections. When the stream is idle and is a
// socket, a caller writes its frame itself with one non-blocking system
// call; otherwise one flusher goroutine ([FrameWriter.Run]) writes all that
// is pending in one system call. A caller never blocks on the peer: what a
// non-blocking write leaves over goes to the flusher. Holds (framehold.go)
// make frames wait to leave together. Safe for concurrent use.
type FrameWriter struct {
	w          io.Writer
	max        int
	maxPending int
	wake       chan struct{} // capacity 1: "the flusher has work"
	// try writes without blocking; nil when the stream cannot, and then the
	// flusher does all writes.
	try func([]byte) (int, error)
	// holds counts Hold calls not yet released (see [FrameWriter.Hold]).
	holds atomic.Int32

	mu sync.Mutex // mu guards the following
	// owner is who writes to the stream now: at most one.
	owner writerOwner
	// pending holds encoded frames not yet handed to the flusher.
	pending []byte
	// spare is the flusher's last buffer, reused for pending.
	spare []byte
	// space, when not nil, is closed (and cleared) when the flusher drains
	// pending or the writer fails; writers waiting for room create it.
	space chan struct{}
	err   error
}

// NewFrameWriter returns a FrameWriter over w. max limits each frame (<= 0:
// codec.DefaultMaxFrameSize); maxPending bounds queued bytes (<= 0:
// codec.DefaultMaxPending).
func NewFrameWriter(w io.Writer, max, maxPending int) *FrameWriter {
	if max <= 0 {
		max = codec.DefaultMaxFrameSize
	}
	if maxPending <= 0 {
		maxPending = codec.DefaultMaxPending
	}
	return &FrameWriter{
		w:          w,
		max:        max,
		maxPending: maxPending,
		wake:       make(chan struct{}, 1),
		try:        nonBlockingWrite(w),
	}
}

// writerOwner says who holds the right to write to the stream.
type writerOwner uint8

const (
	ownerNone    writerOwner = iota // nobody: the next Write may write itself
	ownerCaller                     // a Write is doing a non-blocking write
	ownerFlusher                    // the flusher owns pending until it is empty
)

// Write encodes m and queues it. It waits, honouring ctx, while more than
// the pending limit is queued. An oversize m fails with
// codec.ErrFrameTooLarge and affects no other frame.
func (w *FrameWriter) Write(ctx context.Context, m codec.Frame) error {
	return w.write(ctx, m, modeThrough)
}

// WriteBatched is Write without the write-through: the frame waits for the
// flusher, to share its system call with the frames right behind it.
func (w *FrameWriter) WriteBatched(ctx context.Context, m codec.Frame) error {
	return w.write(ctx, m, modeBatched)
}

// writeMode says what a write does after queueing its frame.
type writeMode uint8

const (
	modeThrough writeMode = iota // write at once when nobody else is writing
	modeBatched                  // leave it to the flusher
	modeHeld                     // leave it for the caller's ReleaseHeld
)

// scratchPool holds the buffers frames are encoded into before a writer
// takes the lock, so that concurrent writers encode in parallel. A held
// write encodes in place instead: one goroutine's burst contends with
// nobody.
var scratchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, minScratch)
	return &b
}}

// Scratch buffers start at minScratch bytes and are kept up to maxScratch.
const (
	minScratch = 4 << 10
	maxScratch = 64 << 10
)

func (w *FrameWriter) write(ctx context.Context, m codec.Frame, mode writeMode) error {
	if mode == modeHeld {
		return w.queue(ctx, m, nil, mode)
	}
	bp := scratchPool.Get().(*[]byte)
	buf, err := codec.AppendFrame((*bp)[:0], m, w.max)
	if err == nil {
		err = w.queue(ctx, nil, buf, mode)
	}
	if cap(buf) <= maxScratch {
		*bp = buf[:0]
		scratchPool.Put(bp)
	}
	return err
}

// queue queues frame, an encoded frame it does not retain, or writes it
// through; with frame nil, it encodes m into the queue.
func (w *FrameWriter) queue(ctx context.Context, m codec.Frame, frame []byte, mode writeMode) error {
	for {
		w.mu.Lock()
		if w.err != nil {
			err := w.err
			w.mu.Unlock()
			return err
		}
		if len(w.pending) < w.maxPending {
			switch {
			case frame == nil:
				// Held: ReleaseHeld or the current writer takes it.
				out, err := codec.AppendFrame(w.pending, m, w.max)
				w.pending = out
				w.mu.Unlock()
				return err
			case w.owner != ownerNone:
				// The current writer takes this frame along.
				w.pending = append(w.pending, frame...)
				w.mu.Unlock()
			case w.holds.Load() > 0:
				// The last Release hands it to the flusher (one that
				// ran before the load left it to us).
				w.pending = append(w.pending, frame...)
				w.mu.Unlock()
			case w.try == nil || mode == modeBatched:
				w.pending = append(w.pending, frame...)
				w.owner = ownerFlusher
				w.mu.Unlock()
				w.kick()
			case len(w.pending) > 0:
				// Frames held by their writer go out first.
				w.pending = append(w.pending, frame...)
				return w.writeThrough(nil)
			default:
				return w.writeThrough(frame)
			}
			return nil
		}
		if err := w.waitSpace(ctx); err != nil {
			return err
		}
	}
}

// writeThrough writes frame (not retained), or with frame nil what is
// pending, from the calling goroutine with one non-blocking system call,
// and hands what is left to the flusher. w.mu is held on entry and
// released on return.
func (w *FrameWriter) writeThrough(frame []byte) error {
	w.owner = ownerCaller
	buf, owned := frame, frame == nil
	if owned {
		buf = w.pending
		w.pending = w.spare[:0]
		w.spare = nil
	}
	w.mu.Unlock()

	n, err := w.try(buf)

	w.mu.Lock()
	if err != nil {
		return w.failLocked(err)
	}
	switch {
	case n < len(buf) && owned:
		// Unsent bytes go first, before frames queued meanwhile.
		rest := append(buf[:0], buf[n:]...)
		w.pending = append(rest, w.pending...)
	case n < len(buf):
		rest := make([]byte, 0, len(buf)-n+len(w.pending))
		w.pending = append(append(rest, buf[n:]...), w.pending...)
	case owned && cap(buf) <= 4*w.maxPending:
		w.spare = buf[:0]
	}
	if len(w.pending) == 0 {
		w.owner = ownerNone
		w.wakeWaitersLocked()
		w.mu.Unlock()
		return nil
	}
	w.wakeWaitersLocked()
	w.owner = ownerFlusher
	w.mu.Unlock()
	w.kick()
	return nil
}

// Flush waits until every frame queued before it, held ones too, has been
// handed to the stream, the writer fails, or ctx ends.
func (w *FrameWriter) Flush(ctx context.Context) error {
	for {
		w.mu.Lock()
		if w.err != nil {
			err := w.err
			w.mu.Unlock()
			return err
		}
		if len(w.pending) == 0 && w.owner == ownerNone {
			w.mu.Unlock()
			return nil
		}
		if w.owner == ownerNone {
			// Held frames: write them now.
			w.owner = ownerFlusher
			w.kick()
		}
		if err := w.waitSpace(ctx); err != nil {
			return err
		}
	}
}

// kick wakes the flusher.
func (w *FrameWriter) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run writes queued frames until ctx ends or a write fails; it returns the
// write error (or nil after ctx ended) and fails every later Write. Exactly
// one goroutine runs it.
func (w *FrameWriter) Run(ctx context.Context) error {
	for {
		select {
		case <-w.wake:
		case <-ctx.Done():
			w.mu.Lock()
			if w.err == nil {
				w.err = agentwire.NewError(agentwire.CodeUnavailable, ErrWriterClosed)
				w.wakeWaitersLocked()
			}
			w.mu.Unlock()
			return nil
		}
		// Let the senders already runnable (woken by the same batch of
		// replies, typically) queue their frames first, so that one system
		// call carries them all.
		runtime.Gosched()
		for first := true; ; first = false {
			w.mu.Lock()
			if w.owner != ownerFlusher {
				// A stale wake-up: a caller is writing, or nothing is due.
				w.mu.Unlock()
				break
			}
			if len(w.pending) == 0 || (!first && w.holds.Load() > 0) {
				// Nothing is due, or more frames are coming: the last
				// Release hands them back.
				w.owner = ownerNone
				w.wakeWaitersLocked()
				w.mu.Unlock()
				break
			}
			out := w.pending
			w.pending = w.spare[:0]
			w.spare = nil
			w.mu.Unlock()
			_, err := w.w.Write(out)
			w.mu.Lock()
			if err != nil {
				// Fail where waiting writers wake, so that none queues a
				// frame never to be written.
				return w.failLocked(err)
			}
			if cap(out) <= 4*w.maxPending {
				w.spare = out[:0]
			}
			w.wakeWaitersLocked()
			w.mu.Unlock()
		}
	}
}

// failLocked fails the writer with err, the stream's, wakes the waiting
// writers and returns what every write now returns. w.mu is held on entry
// and released on return.
func (w *FrameWriter) failLocked(err error) error {
	werr := agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("%w: %w", ErrWriterClosed, err))
	if w.err == nil {
		w.err = werr
	}
	w.pending = nil
	w.owner = ownerNone
	w.wakeWaitersLocked()
	w.mu.Unlock()
	return werr
}

// wakeWaitersLocked wakes the writers waiting for room; w.mu is held.
func (w *FrameWriter) wakeWaitersLocked() {
	if w.space != nil {
		close(w.space)
		w.space = nil
	}
}

// waitSpace waits, honouring ctx, until the flusher drains pending or the
// writer fails. w.mu is held on entry and released on return.
func (w *FrameWriter) waitSpace(ctx context.Context) error {
	if w.space == nil {
		w.space = make(chan struct{})
	}
	space := w.space
	w.mu.Unlock()
	select {
	case <-space:
		return nil
	case <-ctx.Done():
		return agentwire.WrapContextError(ctx.Err())
	}
}
