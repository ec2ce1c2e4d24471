package agent

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

// GRPCServerOptions returns grpc-go server options recommended for agents:
// a codec that encodes the protocol's messages with vtprotobuf (other
// services keep the standard codec) and message size limits matching
// [WithMaxFrameSize]'s default. Pass them to grpc.NewServer.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(wire.GRPCCodec{}),
		grpc.MaxRecvMsgSize(16 << 20),
		grpc.MaxSendMsgSize(16 << 20),
		// Large flow-control windows: a proxy pipelines many events on
		// one stream, and window updates and BDP pings then cost a frame
		// per few events.
		grpc.InitialWindowSize(1 << 20),
		grpc.InitialConnWindowSize(4 << 20),
	}
}

// RegisterGRPC registers the agent service on a grpc-go server under the
// configured service name ([WithServiceName]). ProcessStream runs the
// protocol; ProcessEvent answers one event (or ping, or handshake) per
// call, without a connection state: no cancellation, flow control or
// health reports, and [PeerFromContext] returns nil. ControlStream is
// unimplemented: agentwire carries every control message on ProcessStream.
func (srv *Server) RegisterGRPC(r grpc.ServiceRegistrar) {
	r.RegisterService(wire.ServiceDesc(srv.cfg.serviceName), &grpcService{srv: srv})
}

type grpcService struct {
	agentv2.UnimplementedAgentServiceV2Server
	srv *Server
}

func (g *grpcService) ProcessStream(ss grpc.BidiStreamingServer[agentv2.ProxyToAgent, agentv2.AgentToProxy]) error {
	st := &grpcStream{ss: ss, rpcEnd: newRPCEnd(), out: newSendTarget()}
	return wire.ToGRPC(g.srv.serveRPC(ss.Context(), st, st.rpcEnd))
}

func (g *grpcService) ProcessEvent(ctx context.Context, m *agentv2.ProxyToAgent) (*agentv2.AgentToProxy, error) {
	resp, err := g.srv.processEvent(ctx, m)
	return resp, wire.ToGRPC(err)
}

func (g *grpcService) ControlStream(grpc.BidiStreamingServer[agentv2.AgentControl, agentv2.ProxyControl]) error {
	return wire.ToGRPC(errControlStream)
}

var errControlStream = agentwire.Errorf(agentwire.CodeUnimplemented,
	"agent: ControlStream is not used; agentwire carries health, metrics, config updates, drain and shutdown on ProcessStream")

// serveRPC runs a gRPC or Connect stream. The protocol runs on a goroutine
// the server owns, so that the RPC handler can return (which tears the
// stream down and unblocks the reader) when the server ends the
// connection. A graceful end (Shutdown) returns nil, an abrupt one
// Unavailable.
func (srv *Server) serveRPC(ctx context.Context, st stream, end *rpcEnd) error {
	defer end.finish()
	if !srv.track(st) {
		return errServerClosed()
	}
	done := make(chan error, 1)
	if !srv.goTracked(func() {
		defer srv.untrack(st)
		done <- srv.serve(ctx, st)
	}) {
		srv.untrack(st)
		return errServerClosed()
	}
	select {
	case err := <-done:
		return err
	case <-end.stopped:
		if end.graceful.Load() {
			return nil
		}
		return agentwire.Errorf(agentwire.CodeUnavailable, "agent: connection closed by the agent")
	}
}

// rpcEnd is what gRPC and Connect streams share: a way for the server to
// make the RPC handler return, and a send lock that keeps sends from
// touching the stream once the handler has returned.
type rpcEnd struct {
	sendMu sync.Mutex // sendMu serialises sends and guards done
	done   bool
	// stopped is closed by CloseRecv and Abort.
	stopped  chan struct{}
	stop     sync.Once
	graceful atomic.Bool
}

func newRPCEnd() *rpcEnd { return &rpcEnd{stopped: make(chan struct{})} }

// send runs f unless the handler has returned.
func (r *rpcEnd) send(f func() error) error {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	if r.done {
		return agentwire.NewError(agentwire.CodeUnavailable, errConnClosed)
	}
	if err := f(); err != nil {
		return agentwire.NewError(agentwire.CodeUnavailable, err)
	}
	return nil
}

// finish marks the handler as returned; it waits for a send in progress.
func (r *rpcEnd) finish() {
	r.sendMu.Lock()
	r.done = true
	r.sendMu.Unlock()
}

func (r *rpcEnd) CloseRecv() {
	r.graceful.Store(true)
	r.stop.Do(func() { close(r.stopped) })
}

func (r *rpcEnd) Abort() { r.stop.Do(func() { close(r.stopped) }) }

// grpcStream adapts a grpc-go server stream.
type grpcStream struct {
	*rpcEnd
	ss  grpc.ServerStream
	in  rpcTarget  // what Recv receives into
	out sendTarget // what Send sends from; sendMu guards it
}

var _ stream = (*grpcStream)(nil)

// Recv decodes each message into a recycled envelope whose strings and
// bytes live in the stream's slab (see rpcTarget).
func (g *grpcStream) Recv() (*agentv2.ProxyToAgent, error) {
	g.in.prepare()
	err := g.ss.RecvMsg(&g.in)
	switch {
	case err == nil:
		return g.in.take(), nil
	case errors.Is(err, io.EOF):
		return nil, errHalfClosed
	case g.ss.Context().Err() != nil:
		return nil, errConnClosed
	}
	return nil, wire.FromGRPC(err)
}

func (g *grpcStream) Send(_ context.Context, m *agentv2.AgentToProxy) error {
	return g.send(func() error {
		g.out.AgentToProxy = m
		err := g.ss.SendMsg(&g.out)
		g.out.AgentToProxy = nil
		return err
	})
}

// Release takes back an answered event for the next one of its kind; safe
// to call from any goroutine, concurrently with Recv.
func (g *grpcStream) Release(m *agentv2.ProxyToAgent) { releaseEnvelope(m) }
