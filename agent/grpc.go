package agent

import (
	"context"

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
	return wire.ToGRPC(g.srv.serveRPCStream(ss.Context(), wire.GRPCStream[*sendTarget, *rpcTarget](ss)))
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
