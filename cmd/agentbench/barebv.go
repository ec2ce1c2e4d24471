package main

import (
	"context"

	"google.golang.org/grpc"
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
	registerEcho(gs, bareMsgService, func(_ any, ss grpc.ServerStream) error {
		for {
			in := new(wrapperspb.BytesValue)
			if err := ss.RecvMsg(in); err != nil {
				return nil
			}
			reply := &wrapperspb.BytesValue{Value: make([]byte, rawReplySize)}
			copy(reply.Value, in.Value[:min(len(in.Value), 8)])
			if err := ss.SendMsg(reply); err != nil {
				return err
			}
		}
	})
}

// bareMsgClient is one ClientConn with one stream of BytesValue messages,
// pipelined by slot like bareGRPCClient.
type bareMsgClient struct{ *grpcStream }

func dialBareMsg(_ context.Context, addr string, n int) (*bareMsgClient, error) {
	c, err := dialGRPCStream(addr, n, func(ctx context.Context, cc *grpc.ClientConn) (grpc.ClientStream, error) {
		return cc.NewStream(ctx, &bareStreamDesc, bareMsgMethod)
	})
	if err != nil {
		return nil, err
	}
	c.receive("bare grpc-msg", func() (uint64, error) {
		in := new(wrapperspb.BytesValue)
		if err := c.stream.RecvMsg(in); err != nil {
			return 0, err
		}
		return replyID(in.Value), nil
	})
	return &bareMsgClient{c}, nil
}

func (c *bareMsgClient) roundTrip(slot, size int) roundTrip {
	msg := &wrapperspb.BytesValue{Value: rawFrame(size, uint64(slot))[rawHeader:]}
	return c.trip(slot, func() error { return c.stream.SendMsg(msg) }) // encodes before it returns
}
