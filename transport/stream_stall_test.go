package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// stallingAgent answers the handshake and the first n events, then stops
// reading its stream until stop is closed.
type stallingAgent struct {
	agentv2.UnimplementedAgentServiceV2Server
	n    int
	stop chan struct{}
}

func (a *stallingAgent) ProcessStream(stream agentv2.AgentServiceV2_ProcessStreamServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	hs := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
		ProtocolVersion: ProtocolVersion, Success: true, Encoding: "protobuf",
		Capabilities: &agentv2.AgentCapabilities{ProtocolVersion: ProtocolVersion, AgentId: "stall",
			Features: &agentv2.AgentFeatures{EchoesEventId: true}},
	}}}
	if err := stream.Send(hs); err != nil {
		return err
	}
	for range a.n {
		ev, err := stream.Recv()
		if err != nil {
			return err
		}
		corr, _ := ev.EventCorrelationID()
		if err := stream.Send(&agentv2.AgentToProxy{EventId: ev.GetEventId(), Message: &agentv2.AgentToProxy_Response{
			Response: &agentv2.AgentResponse{CorrelationId: corr,
				Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}}}); err != nil {
			return err
		}
	}
	select {
	case <-a.stop:
	case <-stream.Context().Done():
	}
	return nil
}

// TestStreamSendsNeverWait: on gRPC, senders never wait where grpc-go could
// make them: when the agent stops reading, every Send still ends with its
// context, hundreds of KiB past grpc-go's write quota and the stream's flow
// control window.
func TestStreamSendsNeverWait(t *testing.T) {
	t.Parallel()
	const answered = 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	agent := &stallingAgent{n: answered, stop: make(chan struct{})}
	gs := grpc.NewServer()
	agentv2.RegisterAgentServiceV2Server(gs, agent)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(ln)
	}()
	defer func() {
		close(agent.stop)
		gs.Stop()
		<-served
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Without the liveness check: the agent is silent for longer than it
	// allows, and this test is about the sends, not the hang.
	c, err := DialGRPC(ctx, ln.Addr().String(), WithLiveness(0, 0))
	require.NoError(t, err)
	defer c.Close(context.Background())
	w := c.(*session).w.(*streamWire)
	event := func(i, size int) *agentv2.ProxyToAgent {
		return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
			CorrelationId: "r" + strings.Repeat("x", i%7), Data: make([]byte, size)}}}
	}
	for i := range answered {
		_, err := c.Send(ctx, event(i, 100))
		require.NoError(t, err)
	}

	// The agent reads no more: 128 events of 4 KiB from 16 senders.
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 8 {
				sctx, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
				start := time.Now()
				_, err := c.Send(sctx, event(g*8+i, 4<<10))
				took := time.Since(start)
				scancel()
				assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err), "%v", err)
				assert.Less(t, took, 2*time.Second, "a Send outlived its context")
			}
		})
	}
	waited := make(chan struct{})
	go func() {
		wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		c.Close(context.Background()) // unblocks the stuck Send
		<-waited
		t.Fatal("a Send is stuck in grpc-go")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	assert.Positive(t, w.pending, "nothing waits for the writer: the stall was not reached")
}

// TestStreamUnknownService: an agent without the service ends the stream
// at once; the handshake fails with the reason the stream ended, not with
// the end of the stream.
func TestStreamUnknownService(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(ln)
	}()
	defer func() {
		gs.Stop()
		<-served
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = DialGRPC(ctx, ln.Addr().String(), WithServiceName("zentinel.agent.v2.AgentServiceV2"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unknown service zentinel.agent.v2.AgentServiceV2")
}

// TestStreamSendEOF: a writer that finds the stream ended reports no error
// of its own: the reader learns why the stream ended and fails the
// connection with that. Any other send error ends the writer with it.
func TestStreamSendEOF(t *testing.T) {
	t.Parallel()
	for _, sendErr := range []error{io.EOF, errors.New("broken")} {
		w := &streamWire{
			max: 1 << 20, queue: make(chan *encodedMsg, 1), closed: make(chan struct{}),
			sendMsg: func(e *encodedMsg) error {
				e.free()
				return sendErr
			},
		}
		ev := &agentv2.ProxyToAgent{EventId: 1, Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{CorrelationId: "r"}}}
		require.NoError(t, w.send(context.Background(), ev))
		err := w.run(context.Background())
		if sendErr == io.EOF {
			assert.NoError(t, err)
		} else {
			assert.ErrorIs(t, err, sendErr)
		}
	}
}
