package transport_test

import (
	"context"
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
	"github.com/stretchr/testify/require"
)

// The shared behaviour suite also runs over reverse connections, on a Unix
// socket and on TCP: the agent dials, registers, and the proxy gets a Conn.
func init() {
	harnesses = append(harnesses, reverseHarness("reverse-uds", "unix"), reverseHarness("reverse-tcp", "tcp"))
}

// reverseToken is what the reverse fixtures' agents authenticate with.
const reverseToken = "suite-token"

func reverseHarness(name, network string) harness {
	return harness{name: name, setup: func(t *testing.T, opts ...agent.Option) *fixture {
		a, srv := newServer(t, opts...)
		return &fixture{agent: a, srv: srv,
			dial: func(ctx context.Context, o ...transport.Option) (transport.Conn, error) {
				return dialReverse(ctx, t, srv, network, o...)
			},
			kill: func() { srv.Close() },
		}
	}}
}

// dialReverse starts a reverse listener on network ("unix" or "tcp") with
// opts for its connections, lets srv dial it, and returns the first
// admitted Conn, or the error that stopped the first connection (for
// example a handshake the agent refused). Everything is closed at the end
// of the test.
func dialReverse(ctx context.Context, t *testing.T, srv *agent.Server, network string, opts ...transport.Option) (transport.Conn, error) {
	t.Helper()
	admitted := make(chan transport.Conn, 16)
	failed := make(chan error, 16)
	l, err := transport.NewReverseListener(
		transport.WithConnOptions(opts...),
		transport.WithGlobalToken(reverseToken),
		transport.WithCloseConnsOnClose(),
		transport.WithAdmitHandler(func(_ string, c transport.Conn, _ *agentv2.RegistrationRequest) {
			select {
			case admitted <- c:
			default:
				_ = c.Close(context.Background())
			}
		}),
		transport.WithRejectHandler(func(_ net.Addr, _ string, err error) {
			select {
			case failed <- err:
			default:
			}
		}),
	)
	require.NoError(t, err)
	addr := listenReverse(t, l, network)
	d, err := agent.NewReverseDialer(srv, addr,
		agent.WithAgentToken(reverseToken),
		agent.WithReconnectBackoff(10*time.Millisecond, 100*time.Millisecond))
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Run(context.Background())
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, d.Close(ctx))
		<-done
		require.NoError(t, l.Close(ctx))
	})
	select {
	case c := <-admitted:
		return c, nil
	case err := <-failed:
		return nil, err
	case <-ctx.Done():
		return nil, agentwire.WrapContextError(ctx.Err())
	}
}

// listenReverse makes l serve a fresh loopback TCP port or Unix socket and
// returns the agent's address for it.
func listenReverse(t *testing.T, l *transport.ReverseListener, network string) string {
	t.Helper()
	switch network {
	case "unix":
		path := filepath.Join(shortTempDir(t), "rev.sock")
		_, err := l.ListenUnix(path)
		require.NoError(t, err)
		return "unix://" + path
	case "tcp":
		a, err := l.ListenTCP("127.0.0.1:0", nil)
		require.NoError(t, err)
		return "tcp://" + a.String()
	}
	t.Fatalf("unknown network %q", network)
	return ""
}

// revListener is a reverse listener whose admissions and rejections a test
// can wait for.
type revListener struct {
	*transport.ReverseListener
	network, addr string // for net.Dial
	agentAddr     string // for agent.NewReverseDialer
	admitted      chan admittedConn
	rejected      chan rejectedConn
}

type admittedConn struct {
	id  string
	c   transport.Conn
	reg *agentv2.RegistrationRequest
}

type rejectedConn struct {
	peer net.Addr
	id   string
	err  error
}

// startReverse starts a listener on network with opts; it closes admitted
// connections when the test ends.
func startReverse(t *testing.T, network string, opts ...transport.ReverseOption) *revListener {
	t.Helper()
	rl := &revListener{network: network, admitted: make(chan admittedConn, 64), rejected: make(chan rejectedConn, 256)}
	base := []transport.ReverseOption{
		transport.WithCloseConnsOnClose(),
		transport.WithAdmitHandler(func(id string, c transport.Conn, reg *agentv2.RegistrationRequest) {
			rl.admitted <- admittedConn{id, c, reg}
		}),
		transport.WithRejectHandler(func(peer net.Addr, id string, err error) {
			rl.rejected <- rejectedConn{peer, id, err}
		}),
	}
	l, err := transport.NewReverseListener(append(base, opts...)...)
	require.NoError(t, err)
	rl.ReverseListener = l
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, l.Close(ctx))
	})
	addr := listenReverse(t, l, network)
	rl.agentAddr = addr
	switch network {
	case "unix":
		rl.addr = addr[len("unix://"):]
	default:
		rl.addr = addr[len("tcp://"):]
	}
	return rl
}

func (rl *revListener) nextAdmitted(t *testing.T) admittedConn {
	t.Helper()
	select {
	case a := <-rl.admitted:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("no connection admitted")
	}
	return admittedConn{}
}

func (rl *revListener) nextRejected(t *testing.T) rejectedConn {
	t.Helper()
	select {
	case r := <-rl.rejected:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no rejection reported")
	}
	return rejectedConn{}
}

// rawAgent speaks registration by hand, so tests can send what a real
// agent never would.
type rawAgent struct {
	nc net.Conn
	r  *codec.Reader
}

func dialRaw(t *testing.T, rl *revListener) *rawAgent {
	t.Helper()
	nc, err := net.DialTimeout(rl.network, rl.addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	return &rawAgent{nc: nc, r: codec.NewReader(nc, 0)}
}

func (a *rawAgent) register(t *testing.T, reg *agentv2.RegistrationRequest) {
	t.Helper()
	msg := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Registration{Registration: reg}}
	require.NoError(t, codec.WriteFrameTo(a.nc, msg, 0))
}

// answer reads the registration answer.
func (a *rawAgent) answer(t *testing.T) *agentv2.RegistrationResponse {
	t.Helper()
	require.NoError(t, a.nc.SetReadDeadline(time.Now().Add(5*time.Second)))
	var m agentv2.ProxyToAgent
	require.NoError(t, a.r.ReadProxyToAgent(&m))
	resp := m.GetRegistrationResponse()
	require.NotNil(t, resp, "expected a registration answer, got %v", m.FrameType())
	return resp
}

// handshake answers the proxy's handshake as agentID.
func (a *rawAgent) handshake(t *testing.T, agentID string) {
	t.Helper()
	require.NoError(t, a.nc.SetReadDeadline(time.Now().Add(5*time.Second)))
	var m agentv2.ProxyToAgent
	require.NoError(t, a.r.ReadProxyToAgent(&m))
	require.NotNil(t, m.GetHandshake(), "expected the handshake, got %v", m.FrameType())
	require.NoError(t, a.nc.SetReadDeadline(time.Time{}))
	resp := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
		ProtocolVersion: 2, Success: true, Encoding: "protobuf",
		Capabilities: &agentv2.AgentCapabilities{ProtocolVersion: 2, AgentId: agentID},
	}}}
	require.NoError(t, codec.WriteFrameTo(a.nc, resp, 0))
}

// closedWithin asserts the proxy closes the connection within d (and sends
// nothing more).
func (a *rawAgent) closedWithin(t *testing.T, d time.Duration) {
	t.Helper()
	require.NoError(t, a.nc.SetReadDeadline(time.Now().Add(d)))
	_, _, err := a.r.ReadFrame()
	require.Error(t, err)
	require.NotErrorIs(t, err, os.ErrDeadlineExceeded, "the proxy kept the connection open")
	require.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err), "want the proxy to close, got %v", err)
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}
