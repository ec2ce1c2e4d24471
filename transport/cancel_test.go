package transport_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
)

// TestCancelCarriesItsFields: a cancel reaches the agent with every field
// of the caller's request (blocking_agent_id, manual_reason), timestamped
// when the caller left the timestamp zero; the caller's request is left
// as it was.
func TestCancelCarriesItsFields(t *testing.T) {
	t.Parallel()
	got := make(chan *agentv2.CancelRequest, 2)
	peer, err := testagent.ListenFramedPeer(filepath.Join(shortTempDir(t), "a.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
		return func(c *testagent.PeerConn) {
			if c.Accept("cancels") != nil {
				return
			}
			for {
				m, err := c.Recv()
				if err != nil {
					return
				}
				if cr := m.GetCancel(); cr != nil {
					got <- cr
				}
			}
		}
	})
	require.NoError(t, err)
	defer peer.Close()
	ctx := ctxT(t, 10*time.Second)
	c, err := transport.Dial(ctx, peer.Endpoint())
	require.NoError(t, err)
	defer c.Close(context.Background())

	req := &agentv2.CancelRequest{CorrelationId: "r1", Reason: agentv2.CancelReason_CANCEL_REASON_BLOCKED_BY_AGENT,
		BlockingAgentId: proto.String("waf"), ManualReason: proto.String("operator")}
	before := proto.Clone(req)
	require.NoError(t, c.Cancel(ctx, req))
	assert.True(t, proto.Equal(before, req), "the caller's request is not modified: %v", req)
	cr := <-got
	assert.Positive(t, cr.GetTimestampMs())
	cr.TimestampMs = 0
	assert.True(t, proto.Equal(before, cr), "%v", cr)

	require.NoError(t, c.Cancel(ctx, &agentv2.CancelRequest{Reason: agentv2.CancelReason_CANCEL_REASON_MANUAL, TimestampMs: 42}))
	cr = <-got
	assert.Equal(t, uint64(42), cr.GetTimestampMs(), "a timestamp the caller set is kept")
	assert.Empty(t, cr.GetCorrelationId())
	assert.Nil(t, cr.BlockingAgentId)
}
