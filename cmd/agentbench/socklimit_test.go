package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listenTemp listens on a Unix socket in a short temporary directory (the
// test's own may be too long for a socket path).
func listenTemp(t *testing.T) (net.Listener, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "awb")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	return ln, path
}

// measureSockLimit measures sc's socket limit against the server at path
// briefly.
func measureSockLimit(t *testing.T, path string, sc scenario, size int) loopResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	drivers, closeAll, err := openSockLimit(ctx, path, sc, size)
	require.NoError(t, err)
	defer closeAll()
	require.Len(t, drivers, sc.Conns)
	return measure(ctx, drivers, 20*time.Millisecond, 100*time.Millisecond, 0)
}

func TestSockLimitAgainstRawServer(t *testing.T) {
	t.Parallel()
	ln, path := listenTemp(t)
	done := make(chan struct{})
	go func() { serveRaw(ln); close(done) }()
	t.Cleanup(func() { _ = ln.Close(); <-done })

	for _, sc := range []scenario{
		{Transport: tSockLimit, Conns: 1, InFlight: 1, Payload: payloadHeaders},
		{Transport: tSockLimit, Conns: 2, InFlight: 64, Payload: payloadHeaders},
		{Transport: tSockLimit, Conns: 1, InFlight: 8, Payload: payloadBody},
	} {
		size := frameSize(newEvent(sc.Payload, 0))
		t.Run(fmt.Sprintf("%s/%d", sc.name(), size), func(t *testing.T) {
			res := measureSockLimit(t, path, sc, size)
			assert.Zero(t, res.errors, "%v", res.firstErr)
			assert.Positive(t, res.events)
			assert.Equal(t, res.events, res.hist.n, "every counted reply has its latency")
			assert.Positive(t, res.hist.quantile(0.5))
		})
	}
}

// A reply that is not the next one expected (here, a reply to a frame never
// sent) is an error, not a panic or a count.
func TestSockLimitWrongReply(t *testing.T) {
	t.Parallel()
	ln, path := listenTemp(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		reply := rawFrame(rawReplySize, 7)
		_, _ = c.Write(reply)
		<-t.Context().Done()
		_ = c.Close()
	}()
	t.Cleanup(func() { _ = ln.Close() })

	res := measureSockLimit(t, path, scenario{Transport: tSockLimit, Conns: 1, InFlight: 4, Payload: payloadHeaders}, 506)
	assert.Zero(t, res.events)
	assert.Equal(t, uint64(1), res.errors)
	assert.ErrorContains(t, res.firstErr, "reply 7")
}
