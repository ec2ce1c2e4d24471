package transport_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/require"
)

// TestCloseFlushesNotices: a notice queued just before Close still reaches
// the agent. Over net.Pipe every write waits for the reader, so the notice
// is still queued when Close starts; the agent reads it only after a delay.
func TestCloseFlushesNotices(t *testing.T) {
	t.Parallel()
	proxySide, agentSide := net.Pipe()
	defer agentSide.Close()
	got := make(chan agentv2.FrameType, 8)
	go func() {
		r := codec.NewReader(agentSide, 0)
		var m agentv2.ProxyToAgent
		if err := r.ReadProxyToAgent(&m); err != nil || m.GetHandshake() == nil {
			return
		}
		hs := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
			ProtocolVersion: 2, Success: true, Capabilities: &agentv2.AgentCapabilities{ProtocolVersion: 2, AgentId: "slow-reader"},
		}}}
		if codec.WriteFrameTo(agentSide, hs, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the proxy has queued the notice and called Close by now
		for {
			if err := r.ReadProxyToAgent(&m); err != nil {
				close(got)
				return
			}
			got <- m.FrameType()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := transport.NewFramedConn(ctx, proxySide, "pipe")
	require.NoError(t, err)
	require.NoError(t, c.Notify(ctx, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Shutdown{
		Shutdown: &agentv2.ShutdownRequest{Reason: agentv2.ShutdownRequest_REASON_GRACEFUL}}}))
	require.NoError(t, c.Close(ctx))
	var frames []agentv2.FrameType
	for ft := range got {
		frames = append(frames, ft)
	}
	require.Contains(t, frames, agentv2.ProxyToAgentFrameShutdown, "the notice queued before Close was dropped")
}
