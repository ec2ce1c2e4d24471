package main

import (
	"context"
	"errors"
	"sync"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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
		cid, _ := transport.CorrelationID(ev)
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

// barePBClient is one ClientConn with one ProcessStream, events matched to
// their slot by event id.
type barePBClient struct {
	cc      *grpc.ClientConn
	stream  grpc.BidiStreamingClient[agentv2.ProxyToAgent, agentv2.AgentToProxy]
	cancel  context.CancelFunc
	payload string
	sendMu  sync.Mutex
	slots   []chan struct{}
	done    chan struct{}
	err     error
	wg      sync.WaitGroup
}

func dialBarePB(ctx context.Context, addr, payload string, slots int) (*barePBClient, error) {
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
	stream, err := agentv2.NewAgentServiceV2Client(cc).ProcessStream(sctx)
	if err != nil {
		cancel()
		_ = cc.Close()
		return nil, err
	}
	c := &barePBClient{cc: cc, stream: stream, cancel: cancel, payload: payload, done: make(chan struct{})}
	c.slots = make([]chan struct{}, slots)
	for i := range c.slots {
		c.slots[i] = make(chan struct{}, 1)
	}
	c.wg.Add(1)
	go c.readLoop()
	return c, nil
}

func (c *barePBClient) readLoop() {
	defer c.wg.Done()
	for {
		m, err := c.stream.Recv()
		if err != nil {
			c.err = err
			close(c.done)
			return
		}
		if m.GetResponse() == nil || !signalSlot(c.slots, m.GetEventId()-1) {
			c.err = errors.New("bare grpc-pb: reply for a slot with none in flight")
			close(c.done)
			return
		}
	}
}

// roundTrip sends the scenario's event (size is implied by the payload).
func (c *barePBClient) roundTrip(slot, _ int) roundTrip {
	ev := newEvent(c.payload, slot)
	ev.EventId = uint64(slot) + 1
	ch := c.slots[slot]
	return func(ctx context.Context) error {
		c.sendMu.Lock()
		err := c.stream.Send(ev) // encodes before it returns
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

func (c *barePBClient) close() {
	c.cancel()
	_ = c.cc.Close()
	c.wg.Wait()
}
