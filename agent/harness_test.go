package agent

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// waitTimeout bounds every wait in the tests.
const waitTimeout = 10 * time.Second

// env is a running Server reachable over one transport.
type env struct {
	t    testing.TB
	srv  *Server
	name string
	// dial opens a new connection to the server.
	dial func() *conn
	// grpcCC is the client connection for the gRPC transports.
	grpcCC *grpc.ClientConn
	// path is the socket path for the framed transport.
	path string
}

// conn is the proxy end of one connection, driven by a test.
type conn struct {
	t      testing.TB
	sendMu sync.Mutex
	send   func(*agentv2.ProxyToAgent) error
	// in delivers what the agent sends; it is closed when the connection ends.
	in    chan *agentv2.AgentToProxy
	close func()
	// raw is the socket of the framed transport, nil otherwise.
	raw net.Conn
	// closeSend half-closes a gRPC stream; nil for the framed transport.
	closeSend func() error
}

type transport struct {
	name  string
	start func(t testing.TB, h Handler, opts ...Option) *env
}

var transports = []transport{
	{"uds", startUDS},
	{"grpc", startGRPC},
	{"connect", startConnect},
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestServer(t testing.TB, h Handler, opts ...Option) *Server {
	t.Helper()
	srv, err := NewServer(h, append([]Option{WithLogger(quietLogger())}, opts...)...)
	require.NoError(t, err)
	return srv
}

// socketPath returns a short socket path in a fresh directory.
func socketPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "agent.sock")
}

func startUDS(t testing.TB, h Handler, opts ...Option) *env {
	t.Helper()
	srv := newTestServer(t, h, opts...)
	path := socketPath(t)
	ln, err := srv.ListenUnix(path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeUnix(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-served)
		srv.Close()
	})
	e := &env{t: t, srv: srv, name: "uds", path: path}
	e.dial = func() *conn { return dialUDS(t, path) }
	return e
}

func dialUDS(t testing.TB, path string) *conn {
	t.Helper()
	nc, err := net.Dial("unix", path)
	require.NoError(t, err)
	return framedConn(t, nc)
}

// framedConn drives the proxy end of a framed connection.
func framedConn(t testing.TB, nc net.Conn) *conn {
	t.Helper()
	c := &conn{t: t, raw: nc, in: make(chan *agentv2.AgentToProxy, 4096)}
	c.send = func(m *agentv2.ProxyToAgent) error { return codec.WriteFrameTo(nc, m, 0) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.in)
		r := codec.NewReader(nc, 0)
		for {
			m := &agentv2.AgentToProxy{}
			if err := r.ReadAgentToProxy(m); err != nil {
				return
			}
			c.in <- m
		}
	}()
	c.close = func() {
		_ = nc.Close()
		<-done
	}
	t.Cleanup(c.close)
	return c
}

func startGRPC(t testing.TB, h Handler, opts ...Option) *env {
	t.Helper()
	srv := newTestServer(t, h, opts...)
	gs := grpc.NewServer(GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(ln)
	}()
	e := &env{t: t, srv: srv, name: "grpc"}
	e.grpcCC = newGRPCClient(t, ln.Addr().String())
	t.Cleanup(func() {
		srv.Close()
		gs.Stop()
		<-served
	})
	e.dial = func() *conn { return dialGRPC(t, e.grpcCC, "") }
	return e
}

func startConnect(t testing.TB, h Handler, opts ...Option) *env {
	t.Helper()
	srv := newTestServer(t, h, opts...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeH2C(ctx, ln) }()
	e := &env{t: t, srv: srv, name: "connect"}
	e.grpcCC = newGRPCClient(t, ln.Addr().String())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		require.NoError(t, <-served)
	})
	e.dial = func() *conn { return dialGRPC(t, e.grpcCC, "") }
	return e
}

func newGRPCClient(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// dialGRPC opens a ProcessStream; service overrides the service name.
func dialGRPC(t testing.TB, cc *grpc.ClientConn, service string) *conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var cs grpc.ClientStream
	var err error
	if service == "" {
		cs, err = agentv2.NewAgentServiceV2Client(cc).ProcessStream(ctx)
	} else {
		cs, err = cc.NewStream(ctx, &agentv2.AgentServiceV2_ServiceDesc.Streams[0], "/"+service+"/ProcessStream")
	}
	require.NoError(t, err)
	c := &conn{t: t, in: make(chan *agentv2.AgentToProxy, 4096)}
	c.send = func(m *agentv2.ProxyToAgent) error { return cs.SendMsg(m) }
	c.closeSend = cs.CloseSend
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.in)
		for {
			m := &agentv2.AgentToProxy{}
			if err := cs.RecvMsg(m); err != nil {
				return
			}
			c.in <- m
		}
	}()
	c.close = func() {
		cancel()
		<-done
	}
	t.Cleanup(c.close)
	return c
}

func (c *conn) Send(m *agentv2.ProxyToAgent) {
	c.t.Helper()
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	require.NoError(c.t, c.send(m))
}

// recv returns the next message that match accepts, dropping others.
func (c *conn) recv(match func(*agentv2.AgentToProxy) bool) *agentv2.AgentToProxy {
	c.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				c.t.Fatal("connection ended while waiting for a message")
			}
			if match == nil || match(m) {
				return m
			}
		case <-timer.C:
			c.t.Fatal("timed out waiting for a message")
		}
	}
}

func isResponse(m *agentv2.AgentToProxy) bool { return m.GetResponse() != nil }
func isHealth(m *agentv2.AgentToProxy) bool   { return m.GetHealth() != nil }
func isFlow(m *agentv2.AgentToProxy) bool     { return m.GetFlowControl() != nil }

func (c *conn) response() *agentv2.AgentToProxy { c.t.Helper(); return c.recv(isResponse) }

// responses collects n responses by event id.
func (c *conn) responses(n int) map[uint64]*agentv2.AgentResponse {
	c.t.Helper()
	got := make(map[uint64]*agentv2.AgentResponse, n)
	for len(got) < n {
		m := c.response()
		if _, dup := got[m.EventId]; dup {
			c.t.Fatalf("second response to event %d", m.EventId)
		}
		got[m.EventId] = m.GetResponse()
	}
	return got
}

// waitClosed waits for the agent to end the connection.
func (c *conn) waitClosed() {
	c.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-c.in:
			if !ok {
				return
			}
		case <-timer.C:
			c.t.Fatal("connection still open")
		}
	}
}

func handshakeMsg(intervalMs uint32, versions ...uint32) *agentv2.ProxyToAgent {
	if versions == nil {
		versions = []uint32{2}
	}
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{
		SupportedVersions:      versions,
		ProxyId:                "test-proxy",
		ProxyVersion:           "0.0.1",
		SupportedEncodings:     []string{"protobuf"},
		HealthReportIntervalMs: intervalMs,
	}}}
}

// handshake opens the connection; the first message back must be the
// handshake response.
func (c *conn) handshake() *agentv2.HandshakeResponse {
	c.t.Helper()
	return c.handshakeWith(handshakeMsg(0))
}

func (c *conn) handshakeWith(m *agentv2.ProxyToAgent) *agentv2.HandshakeResponse {
	c.t.Helper()
	c.Send(m)
	first := c.recv(nil)
	hs := first.GetHandshake()
	require.NotNil(c.t, hs, "first message is %v", first)
	return hs
}

// dialReady opens a connection and completes the handshake.
func (e *env) dialReady() *conn {
	e.t.Helper()
	c := e.dial()
	require.True(e.t, c.handshake().GetSuccess())
	return c
}

func requestHeaders(id uint64, cid string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{EventId: id, Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{CorrelationId: cid, RequestId: cid},
		Method:   "GET",
		Uri:      "/" + cid,
	}}}
}

func bodyChunk(id uint64, cid string, index uint32) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{EventId: id, Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: cid, ChunkIndex: index, Data: []byte("chunk"),
	}}}
}

// eventually polls cond until it holds.
func eventually(t testing.TB, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, waitTimeout, time.Millisecond, msg)
}
