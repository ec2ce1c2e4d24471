package transport_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCallTimeoutEach: calls sent at different times to an agent that
// never answers each fail at their own deadline, not at the first one's,
// and the connection keeps serving afterwards.
func TestCallTimeoutEach(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "aw")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	answer := make(chan struct{})
	peer, err := testagent.ListenFramedPeer(filepath.Join(dir, "a.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
		return func(c *testagent.PeerConn) {
			if c.Accept("silent") != nil {
				return
			}
			for {
				ev, err := c.RecvEvent()
				if err != nil {
					return
				}
				select {
				case <-answer:
					if c.Reply(ev, nil) != nil {
						return
					}
				default: // silent
				}
			}
		}
	})
	require.NoError(t, err)
	defer peer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const timeout = 300 * time.Millisecond
	c, err := transport.Dial(ctx, peer.Endpoint(), transport.WithCallTimeout(timeout))
	require.NoError(t, err)
	defer c.Close(context.Background())

	start := time.Now()
	took := make(chan time.Duration, 3)
	for i := range 3 {
		time.Sleep(time.Duration(i) * 100 * time.Millisecond / 2)
		sent := time.Now()
		go func() {
			_, err := c.Send(context.Background(), &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{
				RequestBodyChunk: &agentv2.BodyChunkEvent{CorrelationId: "r"}}})
			assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err), "%v", err)
			took <- time.Since(sent)
		}()
	}
	for range 3 {
		d := <-took
		assert.GreaterOrEqual(t, d, timeout)
		assert.Less(t, d, timeout+150*time.Millisecond, "a call outlived its own deadline")
	}
	assert.Less(t, time.Since(start), 2*timeout)
	assert.Equal(t, 0, c.Status().InFlight)
	close(answer)
	_, err = c.Send(ctx, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{
		RequestBodyChunk: &agentv2.BodyChunkEvent{CorrelationId: "r"}}})
	require.NoError(t, err)
}
