package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
)

func TestMalformedFrameClosesOnlyThatConnection(t *testing.T) {
	t.Parallel()
	for name, frame := range map[string][]byte{
		"garbage payload": {0, 0, 0, 4, 0x10, 0xff, 0xff, 0xff},
		"type mismatch":   append([]byte{0, 0, 0, 3, 0x10}, 0x5a, 0x00), // a ping (field 11) in a request-headers frame
		"zero length":     {0, 0, 0, 0, 0},
		"oversize":        {0x10, 0, 0, 0, 0x10},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := startUDS(t, Base{}, WithMaxFrameSize(1<<20))
			bad := e.dialReady()
			good := e.dialReady()
			_, err := bad.raw.Write(frame)
			require.NoError(t, err)
			bad.waitClosed()
			good.Send(requestHeaders(1, "still"))
			assert.NotNil(t, good.response().GetResponse().GetAllow())
		})
	}
}

func TestTruncatedFrameClosesConnection(t *testing.T) {
	t.Parallel()
	e := startUDS(t, Base{})
	c := e.dialReady()
	_, err := c.raw.Write([]byte{0, 0, 0, 9, 0x10, 1})
	require.NoError(t, err)
	require.NoError(t, c.raw.(*net.UnixConn).CloseWrite())
	c.waitClosed()
}

func TestSocketMode(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Base{})
	defer srv.Close()
	for _, tc := range []struct {
		opts []UnixOption
		want os.FileMode
	}{
		{nil, 0o600},
		{[]UnixOption{WithSocketMode(0o660)}, 0o660},
	} {
		path := socketPath(t)
		ln, err := srv.ListenUnix(path, tc.opts...)
		require.NoError(t, err)
		fi, err := os.Lstat(path)
		require.NoError(t, err)
		assert.Equal(t, os.ModeSocket, fi.Mode().Type())
		assert.Equal(t, tc.want, fi.Mode().Perm())
		assert.Equal(t, path, ln.Addr().String())
		// Nothing else is left in the directory.
		entries, err := os.ReadDir(filepath.Dir(path))
		require.NoError(t, err)
		assert.Len(t, entries, 1)
		require.NoError(t, ln.Close())
		_, err = os.Lstat(path)
		assert.ErrorIs(t, err, os.ErrNotExist, "Close removes the socket file")
	}
}

func TestStaleSocket(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Base{})
	defer srv.Close()

	t.Run("stale socket removed", func(t *testing.T) {
		path := socketPath(t)
		old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		require.NoError(t, err)
		old.SetUnlinkOnClose(false)
		require.NoError(t, old.Close())
		ln, err := srv.ListenUnix(path)
		require.NoError(t, err)
		require.NoError(t, ln.Close())
	})
	t.Run("regular file kept", func(t *testing.T) {
		path := socketPath(t)
		require.NoError(t, os.WriteFile(path, []byte("precious"), 0o600))
		_, err := srv.ListenUnix(path)
		assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(err))
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, "precious", string(b))
	})
	t.Run("live socket kept", func(t *testing.T) {
		path := socketPath(t)
		live, err := net.Listen("unix", path)
		require.NoError(t, err)
		defer live.Close()
		_, err = srv.ListenUnix(path)
		assert.Equal(t, agentwire.CodeAlreadyExists, agentwire.CodeOf(err))
		c, err := net.Dial("unix", path)
		require.NoError(t, err, "the live socket still works")
		c.Close()
	})
}

func TestAllowedUIDs(t *testing.T) {
	t.Parallel()
	uid := uint32(os.Getuid())
	t.Run("rejected", func(t *testing.T) {
		t.Parallel()
		e := startUDS(t, Base{}, WithAllowedUIDs(uid+1))
		c := e.dial()
		// The agent closes before reading anything; the handshake may or may
		// not make it into the socket.
		_ = c.send(handshakeMsg(0))
		c.waitClosed()
	})
	t.Run("allowed", func(t *testing.T) {
		t.Parallel()
		e := startUDS(t, Base{}, WithAllowedUIDs(uid+1, uid))
		e.dialReady()
	})
}

func TestServeConn(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Base{})
	agentEnd, proxyEnd := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeConn(ctx, agentEnd) }()
	c := framedConn(t, proxyEnd)
	c.handshake()
	c.Send(requestHeaders(1, "p"))
	assert.NotNil(t, c.response().GetResponse().GetAllow())
	// Cancelling ctx ends the connection.
	cancel()
	require.NoError(t, <-done)
	c.waitClosed()
	srv.Close()
	// After Close, ServeConn refuses at once.
	a, b := net.Pipe()
	defer b.Close()
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(srv.ServeConn(context.Background(), a)))
}

func TestHandshakeTimeout(t *testing.T) {
	t.Parallel()
	e := startUDS(t, Base{}, WithHandshakeTimeout(30*time.Millisecond))
	c := e.dial()
	c.waitClosed()
}

func TestServerCloseCancelsHandlers(t *testing.T) {
	t.Parallel()
	h := newBlockHandler()
	e := startUDS(t, h)
	c := e.dialReady()
	c.Send(requestHeaders(1, "r"))
	h.waitStarted(t, 1)
	e.srv.Close()
	assert.Error(t, <-h.causes)
	c.waitClosed()
	// A closed server accepts nothing.
	_, err := net.Dial("unix", e.path)
	assert.Error(t, err)
}
