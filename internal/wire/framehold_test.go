package wire

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// recordingWriter keeps each Write's bytes apart. A Write waits for gate
// to be closed if it is set.
type recordingWriter struct {
	gate   chan struct{}
	mu     sync.Mutex
	writes [][]byte
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.gate != nil {
		<-w.gate
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

// take returns the writes so far, each as the event ids of its frames,
// and forgets them.
func (w *recordingWriter) take(t *testing.T) [][]uint64 {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var got [][]uint64
	for _, b := range w.writes {
		var ids []uint64
		r := codec.NewReader(bytes.NewReader(b), 0)
		for {
			var m agentv2.ProxyToAgent
			err := r.ReadProxyToAgent(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("write %d: %v", len(got), err)
			}
			ids = append(ids, m.GetEventId())
		}
		got = append(got, ids)
	}
	w.writes = nil
	return got
}

// TestWriterHold: frames wait while a hold is out and leave in one write
// after the last Release, or when Flush asks for them.
func TestWriterHold(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rec := &recordingWriter{}
		w := NewFrameWriter(rec, 0, 0)
		stop := runWriter(w)
		batched := func(ids ...uint64) {
			t.Helper()
			for _, id := range ids {
				if err := w.WriteBatched(ctx, bodyChunk(id, 10)); err != nil {
					t.Fatal(err)
				}
			}
			synctest.Wait()
		}
		check := func(what string, want ...[]uint64) {
			t.Helper()
			synctest.Wait()
			if got := rec.take(t); !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("%s: writes %v, want %v", what, got, want)
			}
		}

		w.Hold()
		w.Hold()
		batched(1, 2, 3)
		check("held twice")
		w.Release()
		batched(4)
		check("held once")
		w.Release()
		check("released", []uint64{1, 2, 3, 4})

		w.Hold()
		batched(5)
		if err := w.Write(ctx, bodyChunk(6, 10)); err != nil {
			t.Fatal(err)
		}
		check("written while held")
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		check("flushed while held", []uint64{5, 6})
		w.Release()
		check("released with nothing queued")
		if err := w.Write(ctx, bodyChunk(7, 10)); err != nil {
			t.Fatal(err)
		}
		check("written", []uint64{7})

		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestWriterHoldStopsFlusher: frames queued while the flusher writes wait
// for the Release when a hold is out, instead of going out in a second
// write of their own.
func TestWriterHoldStopsFlusher(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rec := &recordingWriter{gate: make(chan struct{})}
		w := NewFrameWriter(rec, 0, 0)
		stop := runWriter(w)
		if err := w.WriteBatched(ctx, bodyChunk(1, 10)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the flusher waits in its write
		w.Hold()
		for id := uint64(2); id <= 4; id++ {
			if err := w.WriteBatched(ctx, bodyChunk(id, 10)); err != nil {
				t.Fatal(err)
			}
		}
		close(rec.gate)
		synctest.Wait()
		if got, want := rec.take(t), [][]uint64{{1}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("held: writes %v, want %v", got, want)
		}
		w.Release()
		synctest.Wait()
		if got, want := rec.take(t), [][]uint64{{2, 3, 4}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("released: writes %v, want %v", got, want)
		}
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestWriterHeld: Held reports whether a hold is out, nested holds
// included.
func TestWriterHeld(t *testing.T) {
	t.Parallel()
	w := NewFrameWriter(&recordingWriter{}, 0, 0)
	if w.Held() {
		t.Fatal("held before any Hold")
	}
	w.Hold()
	w.Hold()
	w.Release()
	if !w.Held() {
		t.Fatal("not held with one hold out")
	}
	w.Release()
	if w.Held() {
		t.Fatal("held after the last Release")
	}
}

// TestWriterWriteHeld: held frames wait for ReleaseHeld, which writes them
// together.
func TestWriterWriteHeld(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := NewFrameWriter(a, 0, 0)
	defer runWriter(w)()
	ctx := context.Background()
	ping := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: 7}}}
	pingFrame, err := codec.AppendFrame(nil, ping, 0)
	require.NoError(t, err)
	require.NoError(t, w.WriteHeld(ctx, ping))
	require.NoError(t, w.WriteHeld(ctx, ping))
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 256)
		n, _ := b.Read(buf)
		got <- buf[:n]
	}()
	select {
	case <-time.After(20 * time.Millisecond):
		// Nothing arrived: the frames wait for ReleaseHeld.
	case <-got:
		t.Fatal("held frames were written before ReleaseHeld")
	}
	require.NoError(t, w.ReleaseHeld())
	want := bytes.Repeat(pingFrame, 2)
	var all []byte
	for len(all) < len(want) {
		all = append(all, <-got...)
		if len(all) < len(want) {
			go func() {
				buf := make([]byte, 256)
				n, _ := b.Read(buf)
				got <- buf[:n]
			}()
		}
	}
	require.Equal(t, want, all)
}
