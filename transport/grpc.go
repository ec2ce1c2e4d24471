package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TransportGRPC names the grpc-go transport.
const TransportGRPC = "grpc"

// wireCodec is the gRPC codec of agentwire's streams: it passes messages the
// sender already encoded straight through and decodes with vtprotobuf. Its
// name is "proto", so peers see ordinary application/grpc+proto traffic.
type wireCodec struct{}

func (wireCodec) Name() string { return "proto" }

type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
	Reset()
}

func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *encodedMsg:
		return mem.BufferSlice{mem.NewBuffer((*[]byte)(m), messageBuffers)}, nil
	case vtMessage:
		n := m.SizeVT()
		bp := messageBuffers.Get(n)
		if _, err := m.MarshalToSizedBufferVT((*bp)[:n]); err != nil {
			messageBuffers.Put(bp)
			return nil, err
		}
		*bp = (*bp)[:n]
		return mem.BufferSlice{mem.NewBuffer(bp, messageBuffers)}, nil
	}
	return nil, fmt.Errorf("agentwire codec: cannot marshal %T", v)
}

func (wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(vtMessage)
	if !ok {
		return fmt.Errorf("agentwire codec: cannot unmarshal into %T", v)
	}
	if env, ok := v.(*agentv2.AgentToProxy); ok && len(data) == 1 && decodeResponse(env, data[0].ReadOnlyData()) {
		return nil
	}
	m.Reset()
	if u, ok := v.(unsafeUnmarshaler); ok {
		// A fresh copy that m owns: strings and bytes alias it instead of
		// being copied one allocation each (see framedWire.recv).
		return u.UnmarshalVTUnsafe(data.Materialize())
	}
	buf := data.MaterializeToBuffer(messageBuffers)
	defer buf.Free()
	return m.UnmarshalVT(buf.ReadOnlyData())
}

// unsafeUnmarshaler decodes with strings and bytes aliasing its input.
type unsafeUnmarshaler interface {
	UnmarshalVTUnsafe([]byte) error
}

var processStreamDesc = grpc.StreamDesc{StreamName: "ProcessStream", ServerStreams: true, ClientStreams: true}

// DialGRPC connects to an agent's gRPC endpoint ("host:port") with grpc-go,
// opens ProcessStream and handshakes. Without [WithTLSConfig] the connection
// is plaintext HTTP/2.
func DialGRPC(ctx context.Context, target string, opts ...Option) (Conn, error) {
	cfg := newConfig(opts)
	creds := insecure.NewCredentials()
	if cfg.tlsConfig != nil {
		creds = credentials.NewTLS(cfg.tlsConfig)
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(wireCodec{})),
		grpc.WithInitialWindowSize(1 << 20),
		grpc.WithInitialConnWindowSize(4 << 20),
	}
	if cfg.maxFrameSize > 0 {
		dopts = append(dopts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.maxFrameSize), grpc.MaxCallSendMsgSize(cfg.maxFrameSize)))
	} else {
		dopts = append(dopts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	}
	cc, err := grpc.NewClient(target, dopts...)
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
	stream, err := cc.NewStream(sctx, &processStreamDesc, "/"+cfg.serviceName+"/ProcessStream")
	close(opened)
	stop()
	if err != nil {
		cancel()
		_ = cc.Close()
		return nil, grpcErr(fmt.Errorf("open ProcessStream on %s: %w", target, err))
	}
	w := &streamWire{
		transport:  TransportGRPC,
		max:        maxOr(cfg.maxFrameSize),
		queue:      make(chan queuedMsg, streamSendQueue),
		closed:     make(chan struct{}),
		maxPending: pendingOr(cfg.maxPending),
		sendMsg:    func(e *encodedMsg) error { return stream.SendMsg(e) },
		direct:     true,
		recvMsg: func(m *agentv2.AgentToProxy) error {
			if err := stream.RecvMsg(m); err != nil {
				return grpcRecvErr(err)
			}
			return nil
		},
		teardown: func() error {
			cancel()
			return cc.Close()
		},
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

// grpcRecvErr classifies a receive error. grpc-go reports an agent message
// it could not decode, or one over the size limit, as a status of its own
// making (Internal, ResourceExhausted), which would read as the agent
// ending the stream; they are protocol violations, as their framed
// equivalents are, and are wrapped in the codec's sentinels so that the
// session treats them alike.
func grpcRecvErr(err error) error {
	if st, ok := status.FromError(err); ok {
		switch {
		case st.Code() == codes.Internal && strings.Contains(st.Message(), "failed to unmarshal"):
			return agentwire.NewError(agentwire.CodeInternal, fmt.Errorf("%w: %w", codec.ErrMalformed, err))
		case st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max"):
			return agentwire.NewError(agentwire.CodeResourceExhausted, fmt.Errorf("%w: %w", codec.ErrFrameTooLarge, err))
		}
	}
	return grpcErr(err)
}

// grpcErr converts a gRPC status into an *agentwire.Error with the same code.
func grpcErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		return agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("%w: stream closed by agent", ErrPeerGone))
	}
	if st, ok := status.FromError(err); ok {
		code := st.Code()
		if code == codes.OK || code == codes.Unknown && errors.Is(err, context.Canceled) {
			code = codes.Unavailable
		}
		return agentwire.NewError(agentwire.Code(code), err)
	}
	return agentwire.NewError(agentwire.CodeUnavailable, err)
}
