package main

import (
	"context"
	"math"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"google.golang.org/grpc"
)

// The bare-grpc-pb baseline is what a hand-written grpc-go client and
// server would cost with agentwire's own messages: the generated
// AgentServiceV2 stubs and grpc-go's default protobuf codec, the same
// events as the agentwire scenarios, and a server that answers each with
// the WAF's decision (allow, one header mutation) without any session
// (no handshake, health, flow control, lanes or workers). The gap between
// it and bare-grpc is protobuf; the gap between agentwire's grpc and it is
// agentwire.

// barePBServer answers every event with allow and one header mutation, one
// event after another.
type barePBServer struct {
	agentv2.UnimplementedAgentServiceV2Server
}

func (barePBServer) ProcessStream(ss grpc.BidiStreamingServer[agentv2.ProxyToAgent, agentv2.AgentToProxy]) error {
	for {
		ev, err := ss.Recv()
		if err != nil {
			return nil
		}
		cid, _ := ev.EventCorrelationID()
		resp := &agentv2.AgentResponse{
			CorrelationId: cid,
			Decision:      &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}},
		}
		if _, ok := ev.GetMessage().(*agentv2.ProxyToAgent_RequestHeaders); ok {
			resp.RequestHeaders = []*agentv2.HeaderOp{{Operation: &agentv2.HeaderOp_Set{Set: &agentv2.Header{Name: "x-waf", Value: "pass"}}}}
		}
		if err := ss.Send(&agentv2.AgentToProxy{EventId: ev.GetEventId(), Message: &agentv2.AgentToProxy_Response{Response: resp}}); err != nil {
			return err
		}
	}
}

func newBarePBServer() *grpc.Server {
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(16<<20))
	agentv2.RegisterAgentServiceV2Server(gs, barePBServer{})
	registerBareMsg(gs)
	return gs
}

// barePBClient is one ClientConn with one ProcessStream opened by the
// generated stub, events matched to their slot by event id.
type barePBClient struct {
	*grpcStream
	payload string
}

func dialBarePB(_ context.Context, addr, payload string, n int) (*barePBClient, error) {
	c, err := dialGRPCStream(addr, n, func(ctx context.Context, cc *grpc.ClientConn) (grpc.ClientStream, error) {
		return agentv2.NewAgentServiceV2Client(cc).ProcessStream(ctx)
	})
	if err != nil {
		return nil, err
	}
	c.receive("bare grpc-pb", func() (uint64, error) {
		m := new(agentv2.AgentToProxy)
		if err := c.stream.RecvMsg(m); err != nil {
			return 0, err
		}
		if m.GetResponse() == nil {
			return math.MaxUint64, nil
		}
		return m.GetEventId() - 1, nil
	})
	return &barePBClient{grpcStream: c, payload: payload}, nil
}

// roundTrip sends the scenario's event (size is implied by the payload).
func (c *barePBClient) roundTrip(slot, _ int) roundTrip {
	ev := newEvent(c.payload, slot)
	ev.EventId = uint64(slot) + 1
	return c.trip(slot, func() error { return c.stream.SendMsg(ev) }) // encodes before it returns
}
