package transport

import (
	"context"
	"fmt"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	iwire "github.com/agentwire/agentwire/internal/wire"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// TransportGRPC names the grpc-go transport.
const TransportGRPC = "grpc"

// DialGRPC connects to an agent's gRPC endpoint ("host:port") with grpc-go,
// opens ProcessStream and handshakes. Without [WithTLSConfig] the connection
// is plaintext HTTP/2.
func DialGRPC(ctx context.Context, target string, opts ...Option) (Conn, error) {
	cfg := newConfig(opts)
	creds := insecure.NewCredentials()
	if cfg.tlsConfig != nil {
		creds = credentials.NewTLS(cfg.tlsConfig)
	}
	limit := orDefault(cfg.maxFrameSize, codec.DefaultMaxFrameSize)
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		// The codec passes the events senders encoded (encodedMsg) through.
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(iwire.GRPCCodec{}),
			grpc.MaxCallRecvMsgSize(limit), grpc.MaxCallSendMsgSize(limit)),
		grpc.WithInitialWindowSize(1<<20),
		grpc.WithInitialConnWindowSize(4<<20),
	)
	if err != nil {
		return nil, agentwire.NewError(agentwire.CodeInvalidArgument, fmt.Errorf("grpc target %q: %w", target, err))
	}
	return dialStream(ctx, cfg, TransportGRPC, func(sctx context.Context, w *streamWire) error {
		if cfg.streamHeaders != nil {
			md := metadata.MD{}
			cfg.streamHeaders(ctx, func(k, v string) { md.Append(k, v) })
			sctx = metadata.NewOutgoingContext(sctx, md)
		}
		stream, err := iwire.NewServiceClient(cc, cfg.serviceName).ProcessStream(sctx)
		if err != nil {
			_ = cc.Close()
			return iwire.FromGRPC(fmt.Errorf("open ProcessStream on %s: %w", target, err))
		}
		rpc := iwire.GRPCStream[*encodedMsg, *replyTarget](stream)
		w.sendMsg, w.recvMsg, w.teardown = rpc.Send, rpc.Recv, cc.Close
		return nil
	})
}
