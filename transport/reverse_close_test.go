package transport_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReverseUnixSocketFile(t *testing.T) {
	t.Parallel()
	t.Run("ModeAndRemoval", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(shortTempDir(t), "rev.sock")
		ln, err := transport.ListenReverseUnix(path)
		require.NoError(t, err)
		fi, err := os.Lstat(path)
		require.NoError(t, err)
		assert.NotZero(t, fi.Mode()&os.ModeSocket)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		assert.Equal(t, path, ln.Addr().String())
		entries, err := os.ReadDir(filepath.Dir(path))
		require.NoError(t, err)
		assert.Len(t, entries, 1, "no temporary files left behind")
		require.NoError(t, ln.Close())
		_, err = os.Lstat(path)
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("StaleSocketReplaced", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(shortTempDir(t), "rev.sock")
		old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		require.NoError(t, err)
		old.SetUnlinkOnClose(false)
		require.NoError(t, old.Close()) // the file stays, nobody listens
		ln, err := transport.ListenReverseUnix(path)
		require.NoError(t, err)
		c, err := net.Dial("unix", path)
		require.NoError(t, err, "the new socket answers")
		c.Close()
		require.NoError(t, ln.Close())
	})
	t.Run("LiveSocketKept", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(shortTempDir(t), "rev.sock")
		live, err := net.Listen("unix", path)
		require.NoError(t, err)
		defer live.Close()
		_, err = transport.ListenReverseUnix(path)
		assert.Equal(t, agentwire.CodeAlreadyExists, agentwire.CodeOf(err), "%v", err)
		c, err := net.Dial("unix", path)
		require.NoError(t, err, "the live socket still works")
		c.Close()
	})
	t.Run("OtherFileKept", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(shortTempDir(t), "rev.sock")
		require.NoError(t, os.WriteFile(path, []byte("data"), 0o644))
		_, err := transport.ListenReverseUnix(path)
		assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(err), "%v", err)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, "data", string(b))
	})
	t.Run("ReplacedFileNotRemoved", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(shortTempDir(t), "rev.sock")
		ln, err := transport.ListenReverseUnix(path)
		require.NoError(t, err)
		require.NoError(t, os.Remove(path))
		require.NoError(t, os.WriteFile(path, []byte("someone else's"), 0o600))
		require.NoError(t, ln.Close())
		_, err = os.Lstat(path)
		assert.NoError(t, err, "Close removed a file that was not its socket")
	})
}

// TestReverseClose: Close drops pending registrations at once, removes the
// socket file, stops Serve, and leaves admitted connections to their owner
// unless asked to close them.
func TestReverseClose(t *testing.T) {
	t.Parallel()
	t.Run("PendingAndSocket", func(t *testing.T) {
		t.Parallel()
		rejected := make(chan error, 8)
		l, err := transport.NewReverseListener(transport.WithGlobalToken("t"),
			transport.WithRegistrationTimeout(time.Minute),
			transport.WithAdmitHandler(func(string, transport.Conn, *agentv2.RegistrationRequest) { t.Error("admitted") }),
			transport.WithRejectHandler(func(_ net.Addr, _ string, err error) { rejected <- err }))
		require.NoError(t, err)
		path := filepath.Join(shortTempDir(t), "rev.sock")
		_, err = l.ListenUnix(path)
		require.NoError(t, err)
		tcp, err := l.ListenTCP("127.0.0.1:0", nil)
		require.NoError(t, err)
		silent := dialRaw(t, &revListener{network: "unix", addr: path})
		stalled := dialRaw(t, &revListener{network: "tcp", addr: tcp.String()})
		_, err = stalled.nc.Write([]byte{0, 0})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return l.Stats().Pending == 2 }, 5*time.Second, time.Millisecond)

		start := time.Now()
		require.NoError(t, l.Close(ctxT(t, 5*time.Second)))
		assert.Less(t, time.Since(start), 2*time.Second, "Close waited for the registration timeout")
		silent.closedWithin(t, time.Second)
		stalled.closedWithin(t, time.Second)
		for range 2 {
			err := <-rejected
			assert.Equal(t, agentwire.CodeCanceled, agentwire.CodeOf(err), "%v", err)
			assert.ErrorIs(t, err, transport.ErrListenerClosed)
		}
		_, err = os.Lstat(path)
		assert.ErrorIs(t, err, os.ErrNotExist, "socket file left behind")
		_, err = net.DialTimeout("tcp", tcp.String(), time.Second)
		assert.Error(t, err, "TCP port still open")
		assert.Zero(t, l.Stats().Pending)

		require.NoError(t, l.Close(context.Background()), "Close is idempotent")
		_, err = l.ListenUnix(path)
		assert.ErrorIs(t, err, transport.ErrListenerClosed)
		_, err = os.Lstat(path)
		assert.ErrorIs(t, err, os.ErrNotExist, "a refused ListenUnix leaves no socket file")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		assert.ErrorIs(t, l.Serve(context.Background(), ln), transport.ErrListenerClosed)
	})

	t.Run("AdmittedConnsKept", func(t *testing.T) {
		t.Parallel()
		admitted := make(chan transport.Conn, 4)
		l, err := transport.NewReverseListener(transport.WithGlobalToken("t"),
			transport.WithAdmitHandler(func(_ string, c transport.Conn, _ *agentv2.RegistrationRequest) { admitted <- c }))
		require.NoError(t, err)
		addr, err := l.ListenTCP("127.0.0.1:0", nil)
		require.NoError(t, err)
		_, srv := newServer(t)
		runReverseAgent(t, srv, "tcp://"+addr.String(), agent.WithAgentToken("t"))
		c := <-admitted
		t.Cleanup(func() { require.NoError(t, c.Close(ctxT(t, 5*time.Second))) })

		require.NoError(t, l.Close(ctxT(t, 5*time.Second)))
		sendOK(t, c, "outlives-the-listener")
	})

	t.Run("AdmittedConnsClosed", func(t *testing.T) {
		t.Parallel()
		admitted := make(chan transport.Conn, 4)
		l, err := transport.NewReverseListener(transport.WithGlobalToken("t"), transport.WithCloseConnsOnClose(),
			transport.WithAdmitHandler(func(_ string, c transport.Conn, _ *agentv2.RegistrationRequest) { admitted <- c }))
		require.NoError(t, err)
		addr, err := l.ListenTCP("127.0.0.1:0", nil)
		require.NoError(t, err)
		_, srv := newServer(t)
		runReverseAgent(t, srv, "tcp://"+addr.String(), agent.WithAgentToken("t"))
		c := <-admitted
		require.NoError(t, l.Close(ctxT(t, 5*time.Second)))
		select {
		case <-c.Done():
		default:
			t.Fatal("Close returned with an admitted connection open")
		}
		assert.ErrorIs(t, c.Err(), transport.ErrClosed)
	})

	t.Run("CloseConns", func(t *testing.T) {
		t.Parallel()
		rl := startReverse(t, "unix", transport.WithGlobalToken("t"))
		_, srv := newServer(t)
		runReverseAgent(t, srv, rl.agentAddr, agent.WithAgentToken("t"), agent.WithReconnectBackoff(5*time.Millisecond, 50*time.Millisecond))
		first := rl.nextAdmitted(t)
		require.NoError(t, rl.CloseConns(ctxT(t, 5*time.Second)))
		<-first.c.Done()
		// The listener keeps serving: the agent comes back.
		second := rl.nextAdmitted(t)
		sendOK(t, second.c, "back")
	})

	t.Run("ServeStopsWithContext", func(t *testing.T) {
		t.Parallel()
		rl := startReverse(t, "tcp", transport.WithGlobalToken("t"))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- rl.Serve(ctx, ln) }()
		a := dialRaw(t, &revListener{network: "tcp", addr: ln.Addr().String()})
		a.register(t, reg("second-port", "t"))
		require.True(t, a.answer(t).GetAccepted(), "one listener serves several ports")
		a.handshake(t, "second-port")
		rl.nextAdmitted(t)
		cancel()
		require.NoError(t, <-served)
		_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		assert.Error(t, err, "Serve left its listener open")
	})

	t.Run("ServeReturnsListenerError", func(t *testing.T) {
		t.Parallel()
		rl := startReverse(t, "tcp", transport.WithGlobalToken("t"))
		err := rl.Serve(context.Background(), failingListener{})
		assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))
		assert.ErrorIs(t, err, errBroken)
	})
}

// TestReverseHandshakeFailure: a registered agent that fails the protocol
// handshake is not admitted, and its cap slot is freed.
func TestReverseHandshakeFailure(t *testing.T) {
	t.Parallel()
	rl := startReverse(t, "tcp", transport.WithGlobalToken("t"), transport.WithMaxConnsPerAgent(1))
	a := dialRaw(t, rl)
	a.register(t, reg("flaky", "t"))
	require.True(t, a.answer(t).GetAccepted())
	var m agentv2.ProxyToAgent
	require.NoError(t, a.r.ReadProxyToAgent(&m))
	require.NotNil(t, m.GetHandshake())
	msg := "no thanks"
	require.NoError(t, codec.WriteFrameTo(a.nc, &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{
		Handshake: &agentv2.HandshakeResponse{Success: false, Error: &msg}}}, 0))
	r := rl.nextRejected(t)
	assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(r.err), "%v", r.err)
	assert.ErrorIs(t, r.err, transport.ErrHandshakeRejected)
	assert.Equal(t, "flaky", r.id)
	a.closedWithin(t, 2*time.Second)

	b := dialRaw(t, rl)
	b.register(t, reg("flaky", "t"))
	require.True(t, b.answer(t).GetAccepted(), "the failed connection still holds the slot")
	b.handshake(t, "flaky")
	rl.nextAdmitted(t)
	assert.Equal(t, uint64(1), rl.Stats().Admitted)
}

var errBroken = errors.New("listener broke")

type failingListener struct{}

func (failingListener) Accept() (net.Conn, error) { return nil, errBroken }
func (failingListener) Close() error              { return nil }
func (failingListener) Addr() net.Addr            { return &net.TCPAddr{} }
