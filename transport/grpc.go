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
	limit := maxOr(cfg.maxFrameSize)
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
	sctx, cancel := context.WithCancel(context.Background())
	if cfg.streamHeaders != nil {
		md := metadata.MD{}
		cfg.streamHeaders(ctx, func(k, v string) { md.Append(k, v) })
		sctx = metadata.NewOutgoingContext(sctx, md)
	}
	dctx := ctx
	if cfg.handshakeTimeout > 0 {
		var dcancel context.CancelFunc
		dctx, dcancel = context.WithTimeout(ctx, cfg.handshakeTimeout)
		defer dcancel()
	}
	// The stream outlives dctx; dctx only bounds getting it open.
	opened := make(chan struct{})
	stop := context.AfterFunc(dctx, func() {
		select {
		case <-opened:
		default:
			cancel()
		}
	})
	stream, err := iwire.NewServiceClient(cc, cfg.serviceName).ProcessStream(sctx)
	close(opened)
	stop()
	if err != nil {
		cancel()
		_ = cc.Close()
		return nil, iwire.FromGRPC(fmt.Errorf("open ProcessStream on %s: %w", target, err))
	}
	w := newStreamWire(TransportGRPC, cfg)
	w.direct = true
	w.sendMsg = func(e *encodedMsg) error { return stream.SendMsg(e) }
	w.recvMsg = func(r *replyTarget) error { return iwire.FromGRPC(stream.RecvMsg(r)) }
	w.teardown = func() error {
		cancel()
		return cc.Close()
	}
	return startSession(dctx, cfg, w)
}

func pendingOr(n int) int {
	if n <= 0 {
		return codec.DefaultMaxPending
	}
	return n
}

func maxOr(n int) int {
	if n <= 0 {
		return 16 << 20
	}
	return n
}
