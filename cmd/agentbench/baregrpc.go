package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"

	"connectrpc.com/connect"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
)

// The bare gRPC baselines carry the same bytes as the raw frames (an id in
// the first 8 bytes, a 40-byte reply) as messages of one bidi stream, with
// a codec that passes bytes through: what grpc-go and connect-go cost by
// themselves, with the dial and server settings agentwire uses.

const (
	bareService = "agentbench.Echo"
	bareMethod  = "/" + bareService + "/Stream"
)

// bytesCodec passes *[]byte messages through. Unmarshal reuses the
// destination's capacity.
type bytesCodec struct{}

func (bytesCodec) Name() string { return "proto" }

func (bytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("bytesCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (bytesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("bytesCodec: cannot unmarshal into %T", v)
	}
	*b = (*b)[:0]
	for _, buf := range data {
		*b = append(*b, buf.ReadOnlyData()...)
	}
	return nil
}

var bareStreamDesc = grpc.StreamDesc{StreamName: "Stream", ServerStreams: true, ClientStreams: true}

// registerEcho registers service, whose one method is the bidi stream
// Stream, on gs.
func registerEcho(gs *grpc.Server, service string, h grpc.StreamHandler) {
	stream := bareStreamDesc
	stream.Handler = h
	gs.RegisterService(&grpc.ServiceDesc{ServiceName: service, HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{stream}}, struct{}{})
}

// newBareGRPCServer answers every message with a 40-byte reply carrying
// its id, one message after another.
func newBareGRPCServer() *grpc.Server {
	gs := grpc.NewServer(grpc.ForceServerCodecV2(bytesCodec{}),
		grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(16<<20))
	registerEcho(gs, bareService, func(_ any, ss grpc.ServerStream) error {
		in := make([]byte, 0, 512)
		for {
			if err := ss.RecvMsg(&in); err != nil {
				return nil
			}
			// grpc-go may still hold a message after SendMsg returns:
			// every reply is a new slice.
			reply := make([]byte, rawReplySize)
			copy(reply, in[:min(len(in), 8)])
			if err := ss.SendMsg(&reply); err != nil {
				return err
			}
		}
	})
	return gs
}

// bareGRPCClient is one ClientConn with one stream and pipelining by slot,
// as transport.DialGRPC opens them.
type bareGRPCClient struct{ *grpcStream }

func dialBareGRPC(_ context.Context, addr string, n int) (*bareGRPCClient, error) {
	c, err := dialGRPCStream(addr, n, func(ctx context.Context, cc *grpc.ClientConn) (grpc.ClientStream, error) {
		return cc.NewStream(ctx, &bareStreamDesc, bareMethod)
	}, grpc.ForceCodecV2(bytesCodec{}))
	if err != nil {
		return nil, err
	}
	in := make([]byte, 0, 64)
	c.receive("bare grpc", func() (uint64, error) {
		if err := c.stream.RecvMsg(&in); err != nil {
			return 0, err
		}
		return replyID(in), nil
	})
	return &bareGRPCClient{c}, nil
}

func (c *bareGRPCClient) roundTrip(slot, size int) roundTrip {
	msg := rawFrame(size, uint64(slot))[rawHeader:] // the id first
	return c.trip(slot, func() error { return c.stream.SendMsg(&msg) })
}

// rawMsg is the bare connect-go message: bytes passed through.
type rawMsg struct{ b []byte }

type connectBytesCodec struct{}

func (connectBytesCodec) Name() string { return "proto" }

func (c connectBytesCodec) Marshal(v any) ([]byte, error) { return c.MarshalAppend(nil, v) }

// MarshalAppend copies the message into connect-go's buffer: connect-go
// recycles what Marshal returns into its buffer pool, so Marshal must never
// return memory someone else still uses.
func (connectBytesCodec) MarshalAppend(dst []byte, v any) ([]byte, error) {
	m, ok := v.(*rawMsg)
	if !ok {
		return nil, fmt.Errorf("connectBytesCodec: cannot marshal %T", v)
	}
	return append(dst, m.b...), nil
}

func (connectBytesCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*rawMsg)
	if !ok {
		return fmt.Errorf("connectBytesCodec: cannot unmarshal into %T", v)
	}
	m.b = append(m.b[:0], data...)
	return nil
}

// newBareConnectServer serves the echo stream with connect-go over h2c.
func newBareConnectServer() *http.Server {
	mux := http.NewServeMux()
	mux.Handle(bareMethod, connect.NewBidiStreamHandler(bareMethod,
		func(ctx context.Context, bs *connect.BidiStream[rawMsg, rawMsg]) error {
			reply := &rawMsg{b: make([]byte, rawReplySize)}
			for {
				in, err := bs.Receive()
				if err != nil {
					return nil
				}
				if len(in.b) >= 8 {
					copy(reply.b, in.b[:8])
				}
				if err := bs.Send(reply); err != nil {
					return err
				}
			}
		},
		connect.WithCodec(connectBytesCodec{}),
		connect.WithReadMaxBytes(16<<20), connect.WithSendMaxBytes(16<<20)))
	hs := &http.Server{Handler: mux, Protocols: new(http.Protocols)}
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	return hs
}

// bareConnectClient is one HTTP/2 connection with one connect-go bidi
// stream (gRPC protocol, gzip not offered), as transport.DialConnect opens
// them.
type bareConnectClient struct {
	slotStream
	tr     *http2.Transport
	stream *connect.BidiStreamForClient[rawMsg, rawMsg]
	cancel context.CancelFunc
}

func dialBareConnect(ctx context.Context, addr string, slots int) (*bareConnectClient, error) {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	return dialBareConnectWith(ctx, tr, addr, slots)
}

func dialBareConnectWith(_ context.Context, tr *http2.Transport, addr string, n int) (*bareConnectClient, error) {
	client := connect.NewClient[rawMsg, rawMsg](&http.Client{Transport: tr}, "http://"+addr+bareMethod,
		connect.WithGRPC(),
		connect.WithCodec(connectBytesCodec{}),
		connect.WithAcceptCompression("gzip", nil, nil),
		connect.WithReadMaxBytes(16<<20), connect.WithSendMaxBytes(16<<20))
	sctx, cancel := context.WithCancel(context.Background())
	stream := client.CallBidiStream(sctx)
	c := &bareConnectClient{slotStream: slotStream{slots: newSlots(n)}, tr: tr, stream: stream, cancel: cancel}
	// connect-go opens the stream lazily; send headers now so that dial
	// errors show here.
	if err := stream.Send(nil); err != nil {
		cancel()
		return nil, err
	}
	c.receive("bare connect", func() (uint64, error) {
		m, err := c.stream.Receive()
		if err != nil {
			return 0, err
		}
		return replyID(m.b), nil
	})
	return c, nil
}

func (c *bareConnectClient) roundTrip(slot, size int) roundTrip {
	msg := &rawMsg{b: rawFrame(size, uint64(slot))[rawHeader:]}
	return c.trip(slot, func() error { return c.stream.Send(msg) })
}

func (c *bareConnectClient) close() {
	c.cancel()
	_ = c.stream.CloseRequest()
	_ = c.stream.CloseResponse()
	c.tr.CloseIdleConnections()
	c.wg.Wait()
}
