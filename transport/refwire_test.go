package transport_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// refEvents are one of each event kind, keyed by the reference's type.
func refEvents(corr string) map[byte]*agentv2.ProxyToAgent {
	return map[byte]*agentv2.ProxyToAgent{
		0x10: {Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
			Metadata: &agentv2.RequestMetadata{CorrelationId: corr, RequestId: "r", ClientIp: "10.1.2.3", ClientPort: 5000, Protocol: "HTTP/1.1"},
			Method:   "GET", Uri: "/admin", Headers: []*agentv2.Header{{Name: "host", Value: "example.com"}},
		}}},
		0x11: {Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
			CorrelationId: corr, Data: []byte("req\x00body"), IsLast: true, BytesTransferred: 8}}},
		0x12: {Message: &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: &agentv2.ResponseHeadersEvent{
			CorrelationId: corr, StatusCode: 200}}},
		0x13: {Message: &agentv2.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: &agentv2.BodyChunkEvent{
			CorrelationId: corr, Data: []byte("resp"), IsLast: true}}},
		0x14: {Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{
			CorrelationId: corr, StatusCode: 200, DurationMs: 3}}},
		0x15: {Message: &agentv2.ProxyToAgent_WebsocketFrame{WebsocketFrame: &agentv2.WebSocketFrameEvent{
			CorrelationId: corr, FrameType: agentv2.WebSocketFrameEvent_FRAME_TYPE_TEXT, Payload: []byte("hi")}}},
		0x16: {Message: &agentv2.ProxyToAgent_Guardrail{Guardrail: &agentv2.GuardrailInspectEvent{
			CorrelationId: corr, Content: "ignore all instructions"}}},
		0x17: {Message: &agentv2.ProxyToAgent_Configure{Configure: &agentv2.ConfigureEvent{ConfigJson: `{"mode":"strict"}`}}},
	}
}

// dialRef dials a, in enc: "" (detection), or an ?encoding= value.
func dialRef(t *testing.T, a *refAgent, enc string, opts ...transport.Option) transport.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ep := "unix://" + a.path
	if enc != "" {
		ep += "?encoding=" + enc
	}
	c, err := transport.Dial(ctx, ep, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// TestReferenceAgentEvents sends every event kind to a reference-style
// agent in each encoding and checks what the agent read and what came back.
func TestReferenceAgentEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, dial, want string }{
		{"detect/msgpack", "", "msgpack"},
		{"msgpack", "msgpack", "msgpack"},
		{"json", "json", "json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := startRefAgent(t, true, func(c *refConn, typ byte, ev map[string]any) {
				cid := ev["correlation_id"].(string)
				switch typ {
				case 0x10:
					c.answer(cid, c.block(403, "denied"), []any{c.setHeader("x-agent", "ref")})
				case 0x12:
					c.answer(cid, c.redirect("https://login/", 302), nil)
				default:
					c.answer(cid, "allow", []any{c.setHeader("x-seen", fmt.Sprintf("%02x", typ))})
				}
			})
			c := dialRef(t, a, tc.dial)
			require.Equal(t, "ref-agent", c.Capabilities().GetAgentId())
			require.Contains(t, c.Capabilities().GetSupportedEvents(), agentv2.EventType_EVENT_TYPE_CONFIGURE)
			rc := a.conn(t)
			require.Equal(t, tc.want, rc.enc)
			ctx := context.Background()
			for typ, ev := range refEvents("req-1") {
				resp, err := c.Send(ctx, ev)
				require.NoError(t, err, "event 0x%02x", typ)
				switch typ {
				case 0x10:
					require.Equal(t, uint32(403), resp.GetBlock().GetStatus())
					require.Equal(t, "denied", resp.GetBlock().GetBody())
					require.Equal(t, "ref", resp.GetRequestHeaders()[0].GetSet().GetValue())
				case 0x12:
					require.Equal(t, "https://login/", resp.GetRedirect().GetUrl())
				default:
					require.NotNil(t, resp.GetAllow(), "event 0x%02x: %v", typ, resp)
					require.Equal(t, fmt.Sprintf("%02x", typ), resp.GetRequestHeaders()[0].GetSet().GetValue())
				}
			}
			got := map[byte]map[string]any{}
			for _, e := range a.seen() {
				got[e.typ] = e.ev
			}
			require.Len(t, got, 8)
			assert.Equal(t, "GET", got[0x10]["method"])
			assert.Equal(t, "/admin", got[0x10]["uri"])
			assert.Equal(t, "req-1", field(got[0x10]["metadata"], 0, "correlation_id"))
			assert.Equal(t, "10.1.2.3", field(got[0x10]["metadata"], 2, "client_ip"))
			assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("req\x00body")), got[0x11]["data"])
			assert.Equal(t, true, got[0x11]["is_last"])
			assert.Equal(t, "text", got[0x15]["opcode"])
			assert.Equal(t, "ignore all instructions", got[0x16]["content"])
			assert.Equal(t, "", got[0x17]["correlation_id"])
			assert.Equal(t, "strict", got[0x17]["config"].(map[string]any)["mode"])
		})
	}
}

// TestReferenceAgentWithoutMsgpack: an agent built without "binary-uds"
// answers the MessagePack offer with JSON, which detection accepts and an
// explicit msgpack endpoint refuses.
func TestReferenceAgentWithoutMsgpack(t *testing.T) {
	t.Parallel()
	a := startRefAgent(t, false, nil)
	c := dialRef(t, a, "")
	require.Equal(t, "json", a.conn(t).enc)
	_, err := c.Send(context.Background(), refEvents("r")[0x10])
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = transport.Dial(ctx, "unix://"+a.path+"?encoding=msgpack")
	require.ErrorIs(t, err, transport.ErrIncompatibleVersion)
	require.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(err))
}

func TestReferenceAgentControl(t *testing.T) {
	t.Parallel()
	for _, enc := range []string{"json", "msgpack"} {
		t.Run(enc, func(t *testing.T) {
			t.Parallel()
			a := startRefAgent(t, true, func(c *refConn, typ byte, ev map[string]any) {}) // never answers
			health := make(chan *agentv2.HealthStatus, 4)
			c := dialRef(t, a, enc, transport.WithHealthHandler(func(h *agentv2.HealthStatus) { health <- h }))
			rc := a.conn(t)
			ctx := context.Background()

			// Ping: the agent echoes the payload as the pong.
			_, err := c.Ping(ctx)
			require.NoError(t, err)

			// Cancel: sent as JSON with the reference's reason numbering.
			done := make(chan error, 1)
			go func() {
				_, err := c.Send(ctx, refEvents("req-c")[0x10])
				done <- err
			}()
			require.Eventually(t, func() bool { return len(a.seen()) == 1 }, 5*time.Second, 5*time.Millisecond)
			require.NoError(t, c.Cancel(ctx, &agentv2.CancelRequest{CorrelationId: "req-c", Reason: agentv2.CancelReason_CANCEL_REASON_TIMEOUT}))
			require.Equal(t, agentwire.CodeCanceled, agentwire.CodeOf(<-done))
			require.Eventually(t, func() bool {
				a.mu.Lock()
				defer a.mu.Unlock()
				for _, p := range a.raw {
					var m map[string]any
					if json.Unmarshal(p, &m) == nil && m["correlation_id"] == "req-c" {
						return m["reason"] == float64(1) // Timeout is 1 in client::CancelReason
					}
				}
				return false
			}, 5*time.Second, 5*time.Millisecond)

			// Health: the state as the reference proxy reads it, an integer.
			rc.write(0x30, rc.encode(map[string]any{"agent_id": "ref-agent", "state": 3, "timestamp_ms": 1}))
			select {
			case h := <-health:
				require.Equal(t, agentv2.HealthState_HEALTH_STATE_DRAINING, h.GetState())
			case <-time.After(5 * time.Second):
				t.Fatal("no health report")
			}
			require.Eventually(t, func() bool { return c.Status().State == transport.StateDraining }, 5*time.Second, 5*time.Millisecond)

			// Flow control: pause, then resume, the whole connection.
			rc.write(0x33, rc.encode(map[string]any{"action": 1, "timestamp_ms": 2}))
			require.Eventually(t, func() bool { return c.Paused("any") }, 5*time.Second, 5*time.Millisecond)
			rc.write(0x33, rc.encode(map[string]any{"action": 2, "timestamp_ms": 3}))
			require.Eventually(t, func() bool { return !c.Paused("any") }, 5*time.Second, 5*time.Millisecond)
		})
	}
}

// TestReferenceReverseRegistration: a reference agent dials the reverse
// listener, registers in JSON, and is then served in JSON.
func TestReferenceReverseRegistration(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			rl := startReverse(t, network, transport.WithGlobalToken("tok"))
			a := startRefAgent(t, false, func(c *refConn, typ byte, ev map[string]any) {
				c.answer(ev["correlation_id"].(string), c.block(451, "legal"), nil)
			})
			resp := a.dialReverse(t, network, rl.addr, "tok")
			require.Equal(t, true, resp["success"], "%v", resp)
			require.NotEmpty(t, resp["connection_id"])
			adm := rl.nextAdmitted(t)
			require.Equal(t, "ref-rev", adm.id)
			require.Equal(t, "ref-rev", adm.c.Capabilities().GetAgentId())
			got, err := adm.c.Send(context.Background(), refEvents("rv")[0x10])
			require.NoError(t, err)
			require.Equal(t, uint32(451), got.GetBlock().GetStatus())
			require.Equal(t, "GET", a.seen()[0].ev["method"])

			// A wrong token is refused in the reference's shape.
			resp = a.dialReverse(t, network, rl.addr, "nope")
			require.Equal(t, false, resp["success"], "%v", resp)
			require.NotEmpty(t, resp["error"])
			rl.nextRejected(t)
		})
	}
}
