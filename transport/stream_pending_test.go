package transport

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// TestStreamPendingBytesBounded: when the stream stops taking messages, a
// gRPC or Connect connection queues at most its pending-bytes bound, not
// 256 messages of any size (up to 4 GiB at the 16 MiB message limit);
// further senders wait and give up with their context. When the stream
// moves again, the queue drains and senders get through.
func TestStreamPendingBytesBounded(t *testing.T) {
	t.Parallel()
	const (
		bound = 64 << 10
		size  = 16 << 10
	)
	unblock := make(chan struct{})
	release := sync.OnceFunc(func() { close(unblock) })
	w := &streamWire{
		transport:  "test",
		max:        1 << 20,
		queue:      make(chan *encodedMsg, streamSendQueue),
		closed:     make(chan struct{}),
		maxPending: bound,
		sendMsg: func(e *encodedMsg) error {
			<-unblock // a peer that stopped reading
			e.free()
			return nil
		},
		teardown: func() error { return nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.run(ctx) }()
	defer func() {
		release()
		cancel()
		_ = w.close()
		<-done
	}()

	msg := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ConfigResponse{ConfigResponse: &agentv2.ConfigUpdateResponse{
		RequestId: strings.Repeat("x", size)}}}
	queued := 0
	for range 300 {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
		err := w.send(sctx, msg)
		scancel()
		switch {
		case err == nil:
			queued++
		case agentwire.CodeOf(err) != agentwire.CodeDeadlineExceeded:
			t.Fatalf("send: %v", err)
		}
	}
	// One message held by the blocked writer, the rest within the bound.
	if max := 1 + bound/size; queued > max {
		t.Fatalf("%d messages of %d bytes queued for a stalled stream, want at most %d", queued, size, max)
	}
	release()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := w.send(sctx, msg); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("send after the stream moved again: %v", err)
	}
}
