package transport_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPingFloodBounded: an agent sends 20 000 pings and reads none of the
// pongs. The proxy answers within a bounded number of goroutines (it used
// to start one per ping, each blocked on the full connection: 400 MB of
// stacks for 750 KB of pings, and a crash under the race detector) and the
// connection stays usable once the agent reads again.
func TestPingFloodBounded(t *testing.T) {
	t.Parallel()
	const pings = 20000
	sent, read := make(chan struct{}), make(chan struct{})
	peer, err := testagent.ListenFramedPeer(filepath.Join(shortTempDir(t), "flood.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
		return func(c *testagent.PeerConn) {
			done := sync.OnceFunc(func() { close(sent) })
			defer done()
			if c.Accept("flood") != nil {
				return
			}
			for i := range pings {
				if c.Send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Ping{Ping: &agentv2.Ping{Sequence: uint64(i)}}}) != nil {
					return
				}
			}
			done()
			<-read
			c.Serve()
		}
	})
	require.NoError(t, err)
	defer peer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := runtime.NumGoroutine()
	c, err := transport.Dial(ctx, peer.Endpoint(), transport.WithMaxPending(4<<10),
		transport.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer c.Close(context.Background())
	select {
	case <-sent:
	case <-ctx.Done():
		t.Fatal("the proxy stopped reading")
	}
	time.Sleep(100 * time.Millisecond)
	assert.Less(t, runtime.NumGoroutine()-before, 2000, "goroutines for unanswered pings")
	close(read)
	_, err = c.Send(ctx, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{CorrelationId: "after"}}}})
	require.NoError(t, err)
}
