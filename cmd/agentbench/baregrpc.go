package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"connectrpc.com/connect"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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

// newBareGRPCServer answers every message with a 40-byte reply carrying
// its id, one message after another.
func newBareGRPCServer() *grpc.Server {
	gs := grpc.NewServer(grpc.ForceServerCodecV2(bytesCodec{}),
		grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(16<<20))
	desc := grpc.ServiceDesc{
		ServiceName: bareService,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Stream",
			ServerStreams: true,
			ClientStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error {
				in := make([]byte, 0, 512)
				for {
					if err := ss.RecvMsg(&in); err != nil {
						return nil
					}
					// grpc-go may still hold a message after SendMsg
					// returns: every reply is a new slice.
					reply := make([]byte, rawReplySize)
					if len(in) >= 8 {
						copy(reply, in[:8])
					}
					if err := ss.SendMsg(&reply); err != nil {
						return err
					}
				}
			},
		}},
	}
	gs.RegisterService(&desc, struct{}{})
	return gs
}

// bareGRPCClient is one ClientConn with one stream and pipelining by slot,
// as transport.DialGRPC opens them.
type bareGRPCClient struct {
	cc     *grpc.ClientConn
	stream grpc.ClientStream
	cancel context.CancelFunc
	sendMu sync.Mutex
	slots  []chan struct{}
	done   chan struct{}
	err    error
	wg     sync.WaitGroup
}

func dialBareGRPC(ctx context.Context, addr string, slots int) (*bareGRPCClient, error) {
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(bytesCodec{}),
			grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)),
		// The same windows as transport.DialGRPC.
		grpc.WithInitialWindowSize(1<<20),
		grpc.WithInitialConnWindowSize(4<<20),
	)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	stream, err := cc.NewStream(sctx, &bareStreamDesc, bareMethod)
	if err != nil {
		cancel()
		_ = cc.Close()
		return nil, err
	}
	c := &bareGRPCClient{cc: cc, stream: stream, cancel: cancel, done: make(chan struct{})}
	c.slots = make([]chan struct{}, slots)
	for i := range c.slots {
		c.slots[i] = make(chan struct{}, 1)
	}
	c.wg.Add(1)
	go c.readLoop()
	return c, nil
}

func (c *bareGRPCClient) readLoop() {
	defer c.wg.Done()
	in := make([]byte, 0, 64)
	for {
		if err := c.stream.RecvMsg(&in); err != nil {
			c.err = err
			close(c.done)
			return
		}
		if len(in) < 8 {
			continue
		}
		if !signalSlot(c.slots, binary.BigEndian.Uint64(in)) {
			c.err = errors.New("bare grpc: reply for a slot with none in flight")
			close(c.done)
			return
		}
	}
}

func (c *bareGRPCClient) roundTrip(slot, size int) roundTrip {
	msg := rawFrame(size, uint64(slot))[rawHeader:] // the id first
	ch := c.slots[slot]
	return func(ctx context.Context) error {
		c.sendMu.Lock()
		err := c.stream.SendMsg(&msg)
		c.sendMu.Unlock()
		if err != nil {
			return err
		}
		select {
		case <-ch:
			return nil
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *bareGRPCClient) close() {
	c.cancel()
	_ = c.cc.Close()
	c.wg.Wait()
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
	tr     *http2.Transport
	stream *connect.BidiStreamForClient[rawMsg, rawMsg]
	cancel context.CancelFunc
	sendMu sync.Mutex
	slots  []chan struct{}
	done   chan struct{}
	err    error
	wg     sync.WaitGroup
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

func dialBareConnectWith(ctx context.Context, tr *http2.Transport, addr string, slots int) (*bareConnectClient, error) {
	client := connect.NewClient[rawMsg, rawMsg](&http.Client{Transport: tr}, "http://"+addr+bareMethod,
		connect.WithGRPC(),
		connect.WithCodec(connectBytesCodec{}),
		connect.WithAcceptCompression("gzip", nil, nil),
		connect.WithReadMaxBytes(16<<20), connect.WithSendMaxBytes(16<<20))
	sctx, cancel := context.WithCancel(context.Background())
	stream := client.CallBidiStream(sctx)
	c := &bareConnectClient{tr: tr, stream: stream, cancel: cancel, done: make(chan struct{})}
	c.slots = make([]chan struct{}, slots)
	for i := range c.slots {
		c.slots[i] = make(chan struct{}, 1)
	}
	// connect-go opens the stream lazily; send headers now so that dial
	// errors show here.
	if err := stream.Send(nil); err != nil {
		cancel()
		return nil, err
	}
	c.wg.Add(1)
	go c.readLoop()
	return c, nil
}

func (c *bareConnectClient) readLoop() {
	defer c.wg.Done()
	for {
		m, err := c.stream.Receive()
		if err != nil {
			c.err = err
			close(c.done)
			return
		}
		if len(m.b) < 8 {
			continue
		}
		if !signalSlot(c.slots, binary.BigEndian.Uint64(m.b)) {
			c.err = errors.New("bare connect: reply for a slot with none in flight")
			close(c.done)
			return
		}
	}
}

func (c *bareConnectClient) roundTrip(slot, size int) roundTrip {
	msg := &rawMsg{b: rawFrame(size, uint64(slot))[rawHeader:]}
	ch := c.slots[slot]
	return func(ctx context.Context) error {
		c.sendMu.Lock()
		err := c.stream.Send(msg)
		c.sendMu.Unlock()
		if err != nil {
			return err
		}
		select {
		case <-ch:
			return nil
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *bareConnectClient) close() {
	c.cancel()
	_ = c.stream.CloseRequest()
	_ = c.stream.CloseResponse()
	c.tr.CloseIdleConnections()
	c.wg.Wait()
}

// signalSlot wakes the round trip waiting on slot id; false if id is out of
// range or already signalled (a reply nobody waits for).
func signalSlot(slots []chan struct{}, id uint64) bool {
	if id >= uint64(len(slots)) {
		return false
	}
	select {
	case slots[id] <- struct{}{}:
		return true
	default:
		return false
	}
}
