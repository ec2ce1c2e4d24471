package wire

import (
	"context"

	"github.com/agentwire/agentwire/codec"
)

// Holds make frames wait so that they leave together, in one system call.
// A hold is taken in one of two ways, by what the holder knows:
//
//   - More frames are coming from other goroutines, already running or
//     runnable (the proxy's senders a batch of replies has just woken):
//     [FrameWriter.Hold] holds every writer's frames until the last
//     [FrameWriter.Release], which hands them to the flusher; the flusher
//     first lets the runnable goroutines add theirs.
//   - The caller itself has more frames to write (the agent's reader
//     answering a burst of events): [FrameWriter.WriteHeld] holds just
//     that frame, until the caller's [FrameWriter.ReleaseHeld] writes it
//     from the calling goroutine, with no hand-off; any other write takes
//     it along earlier.
//
// [FrameWriter.Flush] does not wait for holds.

// Hold holds every frame written from now on ([FrameWriter.Write],
// [FrameWriter.WriteBatched]) until the matching Release, and makes the
// flusher start no further write. Holds nest; every Hold must be released,
// and promptly: frames wait for the last Release.
func (w *FrameWriter) Hold() { w.holds.Add(1) }

// Held reports whether a Hold is out: a frame written now waits for the
// frames already held back and leaves in the same system call.
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
// promises a ReleaseHeld (or a later Write) once it has no more frames to
// add.
func (w *FrameWriter) WriteHeld(ctx context.Context, m codec.Frame) error {
	return w.write(ctx, m, modeHeld)
}

// ReleaseHeld writes what is queued from the calling goroutine (one
// non-blocking system call, the rest to the flusher), unless a write is
// already under way, which then takes it along.
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
