package transport_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBatchesOfSends: rounds of concurrent sends, answered in batches
// with decisions and with errors, all complete. The senders a batch of
// answers wakes hold back the connection's batched writes until the last
// of them has its answer; a hold that was never released would leave
// the next round's events unsent.
func TestBatchesOfSends(t *testing.T) {
	t.Parallel()
	peer, err := testagent.ListenFramedPeer(filepath.Join(shortTempDir(t), "a.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
		return func(c *testagent.PeerConn) {
			if c.Accept("batches") != nil {
				return
			}
			for {
				ev, err := c.RecvEvent()
				if err != nil {
					return
				}
				var resp *agentv2.AgentResponse
				if ev.GetRequestBodyChunk().GetChunkIndex()%2 == 1 {
					resp = &agentv2.AgentResponse{Error: &agentv2.Status{Code: uint32(agentwire.CodeInternal), Message: "odd"}}
				}
				if c.Reply(ev, resp) != nil {
					return
				}
			}
		}
	})
	require.NoError(t, err)
	defer peer.Close()
	c, err := transport.Dial(ctxT(t, 10*time.Second), peer.Endpoint())
	require.NoError(t, err)
	defer c.Close(context.Background())

	ctx := ctxT(t, 20*time.Second)
	for range 50 {
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				_, err := c.Send(ctx, bodyChunk("r", uint32(i), "x"))
				if i%2 == 1 {
					assert.Equal(t, agentwire.CodeInternal, agentwire.CodeOf(err), "%v", err)
				} else {
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
	}
	assert.Equal(t, 0, c.Status().InFlight)
}
