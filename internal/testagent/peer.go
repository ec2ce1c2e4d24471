package testagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
	"github.com/agentwire/agentwire/transport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
)

// Script drives one connection of a [Peer] after the proxy's first message
// arrived. It runs on a goroutine of its own; the connection ends when it
// returns (or earlier, if it closes it). A script must return once the
// connection fails: every PeerConn method fails then.
type Script func(c *PeerConn)

// Chooser picks the script of a new connection from the proxy's first
// message, usually by its proxy id (set with transport.WithProxyID), so that
// one peer can misbehave on some connections and behave on others.
type Chooser func(first *agentv2.ProxyToAgent) Script

// Peer is a test agent that does what its scripts say, including what the
// protocol forbids: answers for unknown event ids, frames of the wrong type
// or over the size limit, truncated frames, no handshake, two handshakes,
// pauses that never end. It serves the framed protocol on a Unix socket
// ([ListenFramedPeer]) or ProcessStream on a grpc-go server
// ([ListenGRPCPeer]).
//
// A Peer is safe for concurrent use. Close ends every connection and waits
// for every script.
type Peer struct {
	transport string
	endpoint  string
	choose    Chooser
	ln        net.Listener // framed
	gs        *grpc.Server // gRPC
	wg        sync.WaitGroup

	mu     sync.Mutex // mu guards the following
	conns  map[*PeerConn]struct{}
	closed bool
}

// ListenFramedPeer serves the framed protocol on a Unix socket at path.
func ListenFramedPeer(path string, choose Chooser) (*Peer, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, agentwire.NewError(agentwire.CodeUnavailable, err)
	}
	p := &Peer{transport: transport.TransportUnix, endpoint: "unix://" + path, choose: choose, ln: ln,
		conns: make(map[*PeerConn]struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// ListenGRPCPeer serves ProcessStream of service
// [transport.DefaultServiceName] on addr ("127.0.0.1:0" picks a port).
// Extra server options (TLS credentials, limits) may be given.
func ListenGRPCPeer(addr string, choose Chooser, opts ...grpc.ServerOption) (*Peer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, agentwire.NewError(agentwire.CodeUnavailable, err)
	}
	p := &Peer{transport: transport.TransportGRPC, endpoint: "grpc://" + ln.Addr().String(), choose: choose,
		conns: make(map[*PeerConn]struct{})}
	p.gs = grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodecV2(wire.GRPCCodec{})}, opts...)...)
	p.gs.RegisterService(&grpc.ServiceDesc{
		ServiceName: transport.DefaultServiceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName: "ProcessStream", ServerStreams: true, ClientStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error { return p.serveStream(ss) },
		}},
	}, nil)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = p.gs.Serve(ln)
	}()
	return p, nil
}

// DialReversePeer connects to a proxy's reverse-connection listener on the
// Unix socket at path, registers as agentID (no token), and runs the
// script that choose picks for the proxy's first message. The peer has
// that one connection; Close ends it.
func DialReversePeer(ctx context.Context, path, agentID string, choose Chooser) (*Peer, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, agentwire.NewError(agentwire.CodeUnavailable, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	reg := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Registration{Registration: &agentv2.RegistrationRequest{
		ProtocolVersion: transport.ProtocolVersion, AgentId: agentID}}}
	r := codec.NewReader(nc, 0)
	var ans agentv2.ProxyToAgent
	if err := codec.WriteFrameTo(nc, reg, 0); err != nil {
		_ = nc.Close()
		return nil, agentwire.NewError(agentwire.CodeUnavailable, err)
	}
	if err := r.ReadProxyToAgent(&ans); err != nil {
		_ = nc.Close()
		return nil, agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("registration: %w", err))
	}
	if rr := ans.GetRegistrationResponse(); !rr.GetAccepted() {
		_ = nc.Close()
		return nil, agentwire.Errorf(agentwire.CodeFailedPrecondition, "registration refused: %s", rr.GetError())
	}
	_ = nc.SetDeadline(time.Time{})
	p := &Peer{transport: transport.TransportReverse, endpoint: "reverse", choose: choose,
		conns: make(map[*PeerConn]struct{})}
	c := &PeerConn{transport: p.transport, w: &framedPeerWire{nc: nc, r: r}}
	p.track(c)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.untrack(c)
		defer c.Close()
		p.run(c)
	}()
	return p, nil
}

// Endpoint is the peer's address for transport.Dial and pool.AddAgent.
func (p *Peer) Endpoint() string { return p.endpoint }

// Transport names the peer's transport (transport.TransportUnix or
// transport.TransportGRPC).
func (p *Peer) Transport() string { return p.transport }

// Close stops accepting, closes every connection, and waits for every
// script to return. Idempotent.
func (p *Peer) Close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]*PeerConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	if p.gs != nil {
		p.gs.Stop()
	}
	p.wg.Wait()
}

func (p *Peer) acceptLoop() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		fw := &framedPeerWire{nc: nc, r: codec.NewReader(nc, 0)}
		c := &PeerConn{transport: p.transport, w: fw}
		if !p.track(c) {
			_ = nc.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			defer c.Close()
			p.run(c)
		}()
	}
}

func (p *Peer) serveStream(ss grpc.ServerStream) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	c := &PeerConn{transport: p.transport, w: &grpcPeerWire{ss: ss, ctx: ctx, cancel: cancel}}
	if !p.track(c) {
		return errors.New("peer closed")
	}
	defer p.untrack(c)
	p.run(c)
	return nil
}

// run reads the proxy's first message and hands the connection to its
// script.
func (p *Peer) run(c *PeerConn) {
	first, err := c.w.recv()
	if err != nil {
		return
	}
	c.first = first
	if s := p.choose(first); s != nil {
		s(c)
	}
}

func (p *Peer) track(c *PeerConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Peer) untrack(c *PeerConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// PeerConn is one connection of a [Peer] as its script sees it. Recv must
// not be called concurrently with itself; the send methods are safe for
// concurrent use, and Close may be called from anywhere, more than once.
type PeerConn struct {
	transport string
	first     *agentv2.ProxyToAgent
	w         peerWire
}

// ErrNotFramed: a byte-level write on a peer connection that is not a byte
// stream (gRPC).
var ErrNotFramed = errors.New("testagent: raw bytes need a framed connection")

// peerWire moves messages of one peer connection.
type peerWire interface {
	recv() (*agentv2.ProxyToAgent, error)
	send(m *agentv2.AgentToProxy) error
	// sendRaw sends payload as one message of type t (framed) or as one
	// gRPC message whatever it holds (t is then ignored).
	sendRaw(t agentv2.FrameType, payload []byte) error
	writeBytes(b []byte) error
	close()
}

// Transport names the connection's transport.
func (c *PeerConn) Transport() string { return c.transport }

// First is the proxy's first message (normally its handshake).
func (c *PeerConn) First() *agentv2.ProxyToAgent { return c.first }

// Recv returns the proxy's next message.
func (c *PeerConn) Recv() (*agentv2.ProxyToAgent, error) { return c.w.recv() }

// RecvEvent returns the proxy's next event, answering pings on the way and
// skipping every other message.
func (c *PeerConn) RecvEvent() (*agentv2.ProxyToAgent, error) {
	for {
		m, err := c.w.recv()
		if err != nil {
			return nil, err
		}
		if _, ok := m.EventCorrelationID(); ok {
			return m, nil
		}
		if ping := m.GetPing(); ping != nil {
			if err := c.Send(&agentv2.AgentToProxy{EventId: m.GetEventId(), Message: &agentv2.AgentToProxy_Pong{
				Pong: &agentv2.Pong{Sequence: ping.GetSequence(), PingTimestampMs: ping.GetTimestampMs()}}}); err != nil {
				return nil, err
			}
		}
	}
}

// Send sends m as is.
func (c *PeerConn) Send(m *agentv2.AgentToProxy) error { return c.w.send(m) }

// SendRaw sends payload as a message of frame type t, whatever it holds.
// On gRPC, t is ignored and payload is the message's bytes.
func (c *PeerConn) SendRaw(t agentv2.FrameType, payload []byte) error { return c.w.sendRaw(t, payload) }

// WriteBytes writes b to the byte stream as is: half a frame, a header
// that announces more than follows, garbage. It fails with [ErrNotFramed]
// on gRPC.
func (c *PeerConn) WriteBytes(b []byte) error { return c.w.writeBytes(b) }

// Close ends the connection: the socket is closed (framed), or the stream
// is ended by the agent (gRPC).
func (c *PeerConn) Close() { c.w.close() }

// Accept answers the proxy's handshake with success as agentID, declaring
// that the agent echoes event ids.
func (c *PeerConn) Accept(agentID string) error {
	return c.Send(HandshakeResponse(agentID))
}

// HandshakeResponse is a successful handshake answer of a protocol-2 agent
// that echoes event ids.
func HandshakeResponse(agentID string) *agentv2.AgentToProxy {
	return &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
		ProtocolVersion: transport.ProtocolVersion, Success: true, Encoding: "protobuf",
		Capabilities: &agentv2.AgentCapabilities{
			ProtocolVersion: transport.ProtocolVersion, AgentId: agentID, Name: "reliability-peer",
			Features: &agentv2.AgentFeatures{EchoesEventId: true, FlowControl: true, Cancellation: true, ConcurrentRequests: 64},
		},
	}}}
}

// Reply answers ev with resp (allow if nil), copying the event and
// correlation ids.
func (c *PeerConn) Reply(ev *agentv2.ProxyToAgent, resp *agentv2.AgentResponse) error {
	return c.Send(Response(ev, resp))
}

// Response is the answer to ev carrying resp (allow if nil), with the
// event's ids.
func Response(ev *agentv2.ProxyToAgent, resp *agentv2.AgentResponse) *agentv2.AgentToProxy {
	if resp == nil {
		resp = &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}
	}
	resp.CorrelationId, _ = ev.EventCorrelationID()
	return &agentv2.AgentToProxy{EventId: ev.GetEventId(), Message: &agentv2.AgentToProxy_Response{Response: resp}}
}

// Serve answers every event with allow, and pings with pongs, until the
// connection fails. It is the well-behaved part of a script.
func (c *PeerConn) Serve() {
	for {
		ev, err := c.RecvEvent()
		if err != nil {
			return
		}
		if err := c.Reply(ev, nil); err != nil {
			return
		}
	}
}

// Drain reads and discards until the connection fails: a peer that
// listens but never answers.
func (c *PeerConn) Drain() {
	for {
		if _, err := c.w.recv(); err != nil {
			return
		}
	}
}

// framedPeerWire is a framed Unix-socket connection.
type framedPeerWire struct {
	nc   net.Conn
	r    *codec.Reader
	wmu  sync.Mutex
	once sync.Once
}

func (f *framedPeerWire) recv() (*agentv2.ProxyToAgent, error) {
	for {
		var m agentv2.ProxyToAgent
		err := f.r.ReadProxyToAgent(&m)
		if errors.Is(err, codec.ErrUnknownFrameType) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &m, nil
	}
}

func (f *framedPeerWire) send(m *agentv2.AgentToProxy) error {
	b, err := codec.AppendFrame(nil, m, 0)
	if err != nil {
		return err
	}
	return f.writeBytes(b)
}

func (f *framedPeerWire) sendRaw(t agentv2.FrameType, payload []byte) error {
	return f.writeBytes(RawFrame(t, payload))
}

func (f *framedPeerWire) writeBytes(b []byte) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	_, err := f.nc.Write(b)
	return err
}

func (f *framedPeerWire) close() { f.once.Do(func() { _ = f.nc.Close() }) }

// RawFrame returns a frame of type t around payload, whatever payload is.
func RawFrame(t agentv2.FrameType, payload []byte) []byte {
	b := make([]byte, 0, agentv2.FrameHeaderSize+len(payload))
	n := uint32(1 + len(payload))
	b = append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), byte(t))
	return append(b, payload...)
}

// grpcPeerWire is one ProcessStream on the peer's grpc-go server.
type grpcPeerWire struct {
	ss     grpc.ServerStream
	ctx    context.Context
	cancel context.CancelFunc
	smu    sync.Mutex
}

func (g *grpcPeerWire) recv() (*agentv2.ProxyToAgent, error) {
	if g.ctx.Err() != nil {
		return nil, g.ctx.Err()
	}
	var m agentv2.ProxyToAgent
	if err := g.ss.RecvMsg(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

func (g *grpcPeerWire) send(m *agentv2.AgentToProxy) error { return g.sendMsg(m) }

func (g *grpcPeerWire) sendRaw(_ agentv2.FrameType, payload []byte) error {
	return g.sendMsg(rawMessage(payload))
}

func (g *grpcPeerWire) sendMsg(m any) error {
	if g.ctx.Err() != nil {
		return g.ctx.Err()
	}
	g.smu.Lock()
	defer g.smu.Unlock()
	return g.ss.SendMsg(m)
}

func (g *grpcPeerWire) writeBytes([]byte) error { return ErrNotFramed }

// close makes the script's next calls fail; the stream ends when the
// script returns (a handler cannot end its stream earlier).
func (g *grpcPeerWire) close() { g.cancel() }

// rawMessage is a gRPC message sent as its bytes: the codec
// (wire.GRPCCodec) passes it through as they are.
type rawMessage []byte

func (r rawMessage) MarshalBuffers() (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(r)}, nil
}
