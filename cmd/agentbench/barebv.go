package main

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The bare-grpc-msg baseline is grpc-go as its own benchmarks and most
// services use it: generated-style protobuf messages through the default
// codec. Each request is one google.protobuf.BytesValue holding the raw
// frame's bytes (an id first), each reply a BytesValue of 40 bytes. It
// sits between bare-grpc (bytes passed through, no protobuf at all) and
// bare-grpc-pb (agentwire's structured events through the default codec).

const (
	bareMsgService = "agentbench.EchoMsg"
	bareMsgMethod  = "/" + bareMsgService + "/Stream"
)

// registerBareMsg adds the BytesValue echo service to gs, which must use
// grpc-go's default protobuf codec.
func registerBareMsg(gs *grpc.Server) {
	desc := grpc.ServiceDesc{
		ServiceName: bareMsgService,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Stream",
			ServerStreams: true,
			ClientStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error {
				for {
					in := new(wrapperspb.BytesValue)
					if err := ss.RecvMsg(in); err != nil {
						return nil
					}
					reply := &wrapperspb.BytesValue{Value: make([]byte, rawReplySize)}
					copy(reply.Value, in.Value)
					if err := ss.SendMsg(reply); err != nil {
						return err
					}
				}
			},
		}},
	}
	gs.RegisterService(&desc, struct{}{})
}

// bareMsgClient is one ClientConn with one stream of BytesValue messages,
// pipelined by slot like bareGRPCClient.
type bareMsgClient struct {
	cc     *grpc.ClientConn
	stream grpc.ClientStream
	cancel context.CancelFunc
	sendMu sync.Mutex
	slots  []chan struct{}
	done   chan struct{}
	err    error
	wg     sync.WaitGroup
}

func dialBareMsg(ctx context.Context, addr string, slots int) (*bareMsgClient, error) {
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)),
		grpc.WithInitialWindowSize(1<<20),
		grpc.WithInitialConnWindowSize(4<<20),
	)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	stream, err := cc.NewStream(sctx, &bareStreamDesc, bareMsgMethod)
	if err != nil {
		cancel()
		_ = cc.Close()
		return nil, err
	}
	c := &bareMsgClient{cc: cc, stream: stream, cancel: cancel, done: make(chan struct{})}
	c.slots = make([]chan struct{}, slots)
	for i := range c.slots {
		c.slots[i] = make(chan struct{}, 1)
	}
	c.wg.Add(1)
	go c.readLoop()
	return c, nil
}

func (c *bareMsgClient) readLoop() {
	defer c.wg.Done()
	for {
		in := new(wrapperspb.BytesValue)
		if err := c.stream.RecvMsg(in); err != nil {
			c.err = err
			close(c.done)
			return
		}
		if len(in.Value) < 8 || !signalSlot(c.slots, binary.BigEndian.Uint64(in.Value)) {
			c.err = errors.New("bare grpc-msg: reply for a slot with none in flight")
			close(c.done)
			return
		}
	}
}

func (c *bareMsgClient) roundTrip(slot, size int) roundTrip {
	msg := &wrapperspb.BytesValue{Value: rawFrame(size, uint64(slot))[rawHeader:]}
	ch := c.slots[slot]
	return func(ctx context.Context) error {
		c.sendMu.Lock()
		err := c.stream.SendMsg(msg) // encodes before it returns
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

func (c *bareMsgClient) close() {
	c.cancel()
	_ = c.cc.Close()
	c.wg.Wait()
}
