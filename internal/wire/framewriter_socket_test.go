//go:build unix

package wire

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// socketPair returns both ends of a Unix stream socket with a small send
// buffer, so non-blocking writes come up short and the flusher must take
// over mid-frame.
func socketPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	dir, err := os.MkdirTemp("", "awwire")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if err := client.(*net.UnixConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestWriterSocketWriteThrough: on a real socket, callers write frames
// themselves while the stream is idle, and short writes hand the rest to the
// flusher: from many goroutines, with frames larger than the socket buffer
// and a slow reader, every frame arrives whole and in each writer's order.
func TestWriterSocketWriteThrough(t *testing.T) {
	t.Parallel()
	client, server := socketPair(t)
	w := NewFrameWriter(client, 0, 64<<10)
	if w.try == nil {
		t.Fatal("a Unix socket should support non-blocking writes")
	}
	stop := runWriter(w)

	const writers, perWriter = 8, 150
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range perWriter {
				id := uint64(g*perWriter + i + 1)
				m := bodyChunk(id, 100+(int(id)*37)%(24<<10))
				if err := w.Write(context.Background(), m); err != nil {
					t.Errorf("writer %d: %v", g, err)
					return
				}
			}
		})
	}
	r := codec.NewReader(server, 0)
	next := make([]int, writers)
	for n := range writers * perWriter {
		var got agentv2.ProxyToAgent
		if err := r.ReadProxyToAgent(&got); err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		id := got.GetEventId()
		g, i := int(id-1)/perWriter, int(id-1)%perWriter
		if g >= writers || i != next[g] {
			t.Fatalf("event %d out of order", id)
		}
		next[g]++
		want := 100 + (int(id)*37)%(24<<10)
		if l := len(got.GetRequestBodyChunk().GetData()); l != want {
			t.Fatalf("event %d: %d data bytes, want %d", id, l, want)
		}
	}
	wg.Wait()
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestWriterSocketPeerGone: a direct write to a closed peer fails that
// Write and every later one with ErrWriterClosed.
func TestWriterSocketPeerGone(t *testing.T) {
	t.Parallel()
	client, server := socketPair(t)
	w := NewFrameWriter(client, 0, 0)
	stop := runWriter(w)
	defer stop()
	server.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ { // the first writes may still fit the buffer
		err = w.Write(context.Background(), bodyChunk(uint64(i+1), 8<<10))
	}
	if err == nil || !codec.IsFatal(err) {
		t.Fatalf("writes to a closed peer kept succeeding: %v", err)
	}
	if err2 := w.Write(context.Background(), bodyChunk(1000, 10)); err2 == nil {
		t.Fatal("a later write succeeded")
	}
}

// TestWriterSocketThroughAfterHeld: a Write that finds frames held by their
// writer writes them first, its own frame behind them.
func TestWriterSocketThroughAfterHeld(t *testing.T) {
	t.Parallel()
	client, server := socketPair(t)
	w := NewFrameWriter(client, 0, 0)
	stop := runWriter(w)
	defer stop()
	ctx := context.Background()
	for id := uint64(1); id <= 2; id++ {
		if err := w.WriteHeld(ctx, bodyChunk(id, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(ctx, bodyChunk(3, 10)); err != nil {
		t.Fatal(err)
	}
	r := codec.NewReader(server, 0)
	for want := uint64(1); want <= 3; want++ {
		var got agentv2.ProxyToAgent
		if err := r.ReadProxyToAgent(&got); err != nil {
			t.Fatal(err)
		}
		if got.GetEventId() != want {
			t.Fatalf("event %d arrived where %d was due", got.GetEventId(), want)
		}
	}
	if err := w.ReleaseHeld(); err != nil {
		t.Fatalf("ReleaseHeld with nothing left: %v", err)
	}
}
