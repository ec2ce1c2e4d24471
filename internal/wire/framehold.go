package wire

import (
	"context"

	"github.com/agentwire/agentwire/codec"
)

// Holds make frames wait so that they leave together, in one system call:
// [FrameWriter.Hold] when more frames are coming from other goroutines
// (the proxy's senders a batch of replies woke), until the last
// [FrameWriter.Release] hands them to the flusher; [FrameWriter.WriteHeld]
// when the caller itself has more to write (the agent's reader answering a
// burst), until its [FrameWriter.ReleaseHeld] writes them with no hand-off.
// [FrameWriter.Flush] does not wait for holds.

// Hold holds every frame written from now on until the last Release, and
// makes the flusher start no further write. Holds nest; release each one
// promptly.
func (w *FrameWriter) Hold() { w.holds.Add(1) }

// Held reports whether a Hold is out: a frame written now leaves with the
// frames held back.
func (w *FrameWriter) Held() bool { return w.holds.Load() > 0 }

// Release ends one Hold; the last one hands the frames queued meanwhile to
// the flusher.
func (w *FrameWriter) Release() {
	if w.holds.Add(-1) > 0 {
		return
	}
	w.mu.Lock()
	if w.err != nil || w.owner != ownerNone || len(w.pending) == 0 {
		w.mu.Unlock()
		return
	}
	w.owner = ownerFlusher
	w.mu.Unlock()
	w.kick()
}

// WriteHeld queues m without writing it or waking the flusher: the caller
// promises a ReleaseHeld (or a later Write).
func (w *FrameWriter) WriteHeld(ctx context.Context, m codec.Frame) error {
	return w.write(ctx, m, modeHeld)
}

// ReleaseHeld writes what is queued from the calling goroutine, unless a
// write under way takes it along.
func (w *FrameWriter) ReleaseHeld() error {
	w.mu.Lock()
	switch {
	case w.err != nil:
		err := w.err
		w.mu.Unlock()
		return err
	case w.owner != ownerNone || len(w.pending) == 0:
		w.mu.Unlock()
		return nil
	case w.try == nil:
		w.owner = ownerFlusher
		w.mu.Unlock()
		w.kick()
		return nil
	}
	return w.writeThrough(nil)
}
