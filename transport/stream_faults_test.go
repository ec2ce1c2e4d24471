package transport_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStreamBadAgentMessage: on gRPC and Connect, an agent message the
// proxy cannot decode, or one over the size limit, closes the connection
// at once as a protocol violation, as on the framed transports. Connect
// used to hang (connect-go reads to the end of the stream after such an
// error) until each call's deadline; gRPC reported the agent as gone.
func TestStreamBadAgentMessage(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	for _, tt := range []struct {
		name     string
		send     func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error
		sentinel error
	}{
		{"Malformed", func(c *testagent.PeerConn, _ *agentv2.ProxyToAgent) error {
			return c.SendRaw(0, []byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f}) // a response of 2^35 bytes
		}, codec.ErrMalformed},
		{"OverLimit", func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			resp := testagent.Response(ev, nil)
			resp.GetResponse().Audit = &agentv2.AuditMetadata{Tags: []string{strings.Repeat("x", 2*limit)}}
			return c.Send(resp)
		}, codec.ErrFrameTooLarge},
	} {
		for _, scheme := range []string{"grpc", "http"} {
			t.Run(tt.name+"/"+scheme, func(t *testing.T) {
				t.Parallel()
				peer, err := testagent.ListenGRPCPeer("127.0.0.1:0", func(*agentv2.ProxyToAgent) testagent.Script {
					return func(c *testagent.PeerConn) {
						if c.Accept("bad") != nil {
							return
						}
						if ev, err := c.RecvEvent(); err == nil && tt.send(c, ev) == nil {
							c.Drain() // keep the stream open
						}
					}
				})
				require.NoError(t, err)
				defer peer.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				endpoint := scheme + "://" + strings.TrimPrefix(peer.Endpoint(), "grpc://")
				c, err := transport.Dial(ctx, endpoint, transport.WithMaxFrameSize(limit))
				require.NoError(t, err)
				defer c.Close(context.Background())

				start := time.Now()
				_, err = c.Send(ctx, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{
					RequestHeaders: &agentv2.RequestHeadersEvent{Metadata: &agentv2.RequestMetadata{CorrelationId: "r1"}}}})
				require.Error(t, err)
				assert.Less(t, time.Since(start), 2*time.Second, "the call waited for its deadline")
				assert.Equal(t, agentwire.CodeInternal, agentwire.CodeOf(err), "%v", err)
				assert.ErrorIs(t, err, transport.ErrProtocol)
				assert.ErrorIs(t, err, tt.sentinel)
				select {
				case <-c.Done():
				case <-time.After(2 * time.Second):
					t.Fatal("connection not closed")
				}
			})
		}
	}
}
