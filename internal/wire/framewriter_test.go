package wire

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/frametest"
)

// The frames the tests write, and how they check errors.
var (
	bodyChunk = frametest.BodyChunk
	checkErr  = frametest.CheckErr
)

// checkEOF asserts err reports a clean end of stream.
func checkEOF(t testing.TB, err error) {
	t.Helper()
	checkErr(t, err, io.EOF, agentwire.CodeUnavailable)
	if errors.Is(err, codec.ErrTruncated) {
		t.Errorf("clean EOF reported as truncated: %v", err)
	}
}

// runWriter starts w's flusher and returns a function that stops it and
// returns Run's result.
func runWriter(w *FrameWriter) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// TestWriterConcurrent: frames written from many goroutines arrive intact,
// each goroutine's in the order it wrote them, with a small pending limit
// so writers also wait for the flusher.
func TestWriterConcurrent(t *testing.T) {
	t.Parallel()
	const writers, perWriter = 16, 60
	want := make([][]*agentv2.ProxyToAgent, writers)
	for g := range writers {
		for i := range perWriter {
			id := uint64(g*perWriter + i + 1)
			if i%10 == 9 {
				want[g] = append(want[g], bodyChunk(id, 20<<10))
				continue
			}
			info := agentv2.ProxyToAgentFrames[(g+i)%len(agentv2.ProxyToAgentFrames)]
			m := &agentv2.ProxyToAgent{}
			frametest.Populate(t, m, info, id, g+i)
			want[g] = append(want[g], m)
		}
	}

	pr, pw := io.Pipe()
	w := NewFrameWriter(pw, 0, 8<<10)
	stop := runWriter(w)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for _, m := range want[g] {
				if err := w.Write(context.Background(), m); err != nil {
					t.Errorf("writer %d: %v", g, err)
					return
				}
			}
		})
	}

	r := codec.NewReader(pr, 0)
	next := make([]int, writers)
	for range writers * perWriter {
		got := &agentv2.ProxyToAgent{}
		if err := r.ReadProxyToAgent(got); err != nil {
			t.Fatalf("read: %v", err)
		}
		g, i := int(got.GetEventId()-1)/perWriter, int(got.GetEventId()-1)%perWriter
		if g >= writers || i != next[g] {
			t.Fatalf("event %d out of order: writer %d's next is %d", got.GetEventId(), g, next[min(g, writers-1)])
		}
		next[g]++
		if !got.EqualVT(want[g][i]) || !proto.Equal(got, want[g][i]) {
			t.Errorf("decoded message differs\n got: %v\nwant: %v", got, want[g][i])
		}
	}
	wg.Wait()
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	pw.Close()
	checkEOF(t, r.ReadProxyToAgent(&agentv2.ProxyToAgent{}))
}

// TestWriterOversizeFailsAlone: an oversize or invalid message fails its own
// Write; concurrent writers' frames all arrive and nothing partial does.
func TestWriterOversizeFailsAlone(t *testing.T) {
	t.Parallel()
	const writers, perWriter, limit = 8, 40, 4096
	pr, pw := io.Pipe()
	w := NewFrameWriter(pw, limit, 0)
	stop := runWriter(w)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range perWriter {
				if g == 0 && i%5 == 0 {
					err := w.Write(context.Background(), bodyChunk(0, limit))
					checkErr(t, err, codec.ErrFrameTooLarge, agentwire.CodeResourceExhausted)
					err = w.Write(context.Background(), &agentv2.ProxyToAgent{EventId: 1})
					if agentwire.CodeOf(err) != agentwire.CodeInvalidArgument {
						t.Errorf("envelope without a case: %v", err)
					}
				}
				if err := w.Write(context.Background(), bodyChunk(uint64(g*perWriter+i+1), 1000)); err != nil {
					t.Errorf("writer %d: %v", g, err)
				}
			}
		})
	}
	r := codec.NewReader(pr, limit)
	seen := map[uint64]bool{}
	for range writers * perWriter {
		var m agentv2.ProxyToAgent
		if err := r.ReadProxyToAgent(&m); err != nil {
			t.Fatalf("read: %v", err)
		}
		if m.EventId == 0 || seen[m.EventId] || len(m.GetRequestBodyChunk().GetData()) != 1000 {
			t.Fatalf("unexpected frame: event %d, %d bytes", m.EventId, len(m.GetRequestBodyChunk().GetData()))
		}
		seen[m.EventId] = true
	}
	wg.Wait()
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	pw.Close()
	checkEOF(t, r.ReadProxyToAgent(&agentv2.ProxyToAgent{}))
}

// blockedFlusher sets up, inside a synctest bubble, a Writer with a 1 KiB
// pending limit whose flusher is stuck writing frame 1 to a pipe nobody
// reads, and frames 2 and 3 (625 bytes each) queued: pending is over the
// limit.
func blockedFlusher(t *testing.T) (w *FrameWriter, r *codec.Reader, stop func() error, closePipe func()) {
	t.Helper()
	pr, pw := io.Pipe()
	w = NewFrameWriter(pw, 0, 1024)
	stop = runWriter(w)
	if err := w.Write(context.Background(), bodyChunk(1, 600)); err != nil {
		t.Fatal(err)
	}
	synctest.Wait() // the flusher took frame 1 and blocks in the pipe
	for id := uint64(2); id <= 3; id++ {
		if err := w.Write(context.Background(), bodyChunk(id, 600)); err != nil {
			t.Fatalf("frame %d: %v", id, err)
		}
	}
	return w, codec.NewReader(pr, 0), stop, func() { pw.Close() }
}

// readIDs reads frames and checks their event ids.
func readIDs(t *testing.T, r *codec.Reader, ids ...uint64) {
	t.Helper()
	for _, id := range ids {
		var m agentv2.ProxyToAgent
		if err := r.ReadProxyToAgent(&m); err != nil {
			t.Fatalf("read event %d: %v", id, err)
		}
		if m.EventId != id {
			t.Fatalf("read event %d, want %d", m.EventId, id)
		}
	}
}

func TestWriterBlocksWhenPendingFull(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		w, r, stop, closePipe := blockedFlusher(t)
		done := make(chan error, 1)
		go func() { done <- w.Write(context.Background(), bodyChunk(4, 600)) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Write returned (%v) with pending over the limit", err)
		default:
		}

		readIDs(t, r, 1, 2, 3) // the flusher drains everything pending
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Write after the drain: %v", err)
			}
		default:
			t.Fatal("Write still blocked after the flusher drained")
		}
		readIDs(t, r, 4)
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		closePipe()
		checkEOF(t, r.ReadProxyToAgent(&agentv2.ProxyToAgent{}))
	})
}

func TestWriterHonoursContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		w, r, stop, closePipe := blockedFlusher(t)

		ctx, cancel := context.WithCancel(context.Background())
		canceled := make(chan error, 1)
		go func() { canceled <- w.Write(ctx, bodyChunk(100, 10)) }()
		deadline, cancelDeadline := context.WithTimeout(context.Background(), time.Second)
		defer cancelDeadline()
		timedOut := make(chan error, 1)
		go func() { timedOut <- w.Write(deadline, bodyChunk(101, 10)) }()

		synctest.Wait()
		cancel()
		err := <-canceled
		checkErr(t, err, context.Canceled, agentwire.CodeCanceled)
		start := time.Now()
		err = <-timedOut // the fake clock moves on while everyone waits
		checkErr(t, err, context.DeadlineExceeded, agentwire.CodeDeadlineExceeded)
		if waited := time.Since(start); waited > time.Second {
			t.Errorf("deadline honoured after %v", waited)
		}

		// Neither abandoned frame was queued.
		readIDs(t, r, 1, 2, 3)
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		closePipe()
		checkEOF(t, r.ReadProxyToAgent(&agentv2.ProxyToAgent{}))
	})
}

// TestWriterBatches: frames queued while the flusher writes go out together
// in its next write.
func TestWriterBatches(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		pr, pw := io.Pipe()
		w := NewFrameWriter(pw, 0, 0)
		stop := runWriter(w)
		if err := w.Write(context.Background(), bodyChunk(1, 10)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for id := uint64(2); id <= 11; id++ {
			if err := w.Write(context.Background(), bodyChunk(id, 10)); err != nil {
				t.Fatal(err)
			}
		}
		// A pipe read returns at most one write's bytes.
		buf := make([]byte, 64<<10)
		first, err := pr.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		second, err := io.ReadAtLeast(pr, buf[first:], 1)
		if err != nil {
			t.Fatal(err)
		}
		r := codec.NewReader(bytes.NewReader(buf[first:first+second]), 0)
		for id := uint64(2); id <= 11; id++ {
			var m agentv2.ProxyToAgent
			if err := r.ReadProxyToAgent(&m); err != nil {
				t.Fatalf("the second write lacks event %d: %v", id, err)
			}
		}
		checkEOF(t, r.ReadProxyToAgent(&agentv2.ProxyToAgent{}))
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		pw.Close()
	})
}

// gatedWriter blocks each Write until gate is closed, then fails with err.
type gatedWriter struct {
	gate chan struct{}
	err  error
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	<-w.gate
	return 0, w.err
}

// TestWriterWriteError: after the flusher's write fails, Run returns the
// error and every Write, blocked or later, fails with ErrWriterClosed.
func TestWriterWriteError(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("broken pipe")
		gw := &gatedWriter{gate: make(chan struct{}), err: boom}
		w := NewFrameWriter(gw, 0, 1024)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		runErr := make(chan error, 1)
		go func() { runErr <- w.Run(ctx) }()

		if err := w.Write(ctx, bodyChunk(1, 600)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the flusher waits at the gate
		for id := uint64(2); id <= 3; id++ {
			if err := w.Write(ctx, bodyChunk(id, 600)); err != nil {
				t.Fatal(err)
			}
		}
		blocked := make(chan error, 1)
		go func() { blocked <- w.Write(ctx, bodyChunk(4, 600)) }()
		synctest.Wait()
		close(gw.gate)

		err := <-runErr
		checkErr(t, err, ErrWriterClosed, agentwire.CodeUnavailable)
		checkErr(t, err, boom, agentwire.CodeUnavailable)
		err = <-blocked
		checkErr(t, err, ErrWriterClosed, agentwire.CodeUnavailable)
		checkErr(t, err, boom, agentwire.CodeUnavailable)
		err = w.Write(ctx, bodyChunk(5, 10))
		checkErr(t, err, ErrWriterClosed, agentwire.CodeUnavailable)
	})
}

// TestWriterRunCanceled: when Run's context ends, Run returns nil and later
// Writes fail with ErrWriterClosed.
func TestWriterRunCanceled(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pr.Close()
		w := NewFrameWriter(pw, 0, 0)
		stop := runWriter(w)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
		checkErr(t, w.Write(context.Background(), bodyChunk(1, 10)), ErrWriterClosed, agentwire.CodeUnavailable)
	})
}
