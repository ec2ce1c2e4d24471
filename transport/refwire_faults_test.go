package transport_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/require"
)

// Reference agents that lie, repeat themselves or send garbage: every
// such answer fails its request (or the connection), never allows it.
func TestReferenceAgentFaults(t *testing.T) {
	t.Parallel()
	for _, enc := range []string{"json", "msgpack"} {
		t.Run(enc+"/wrong id", func(t *testing.T) {
			t.Parallel()
			a := startRefAgent(t, true, func(c *refConn, typ byte, ev map[string]any) {
				c.answer("someone-else", "allow", nil)
			})
			c := dialRef(t, a, enc, transport.WithCallTimeout(300*time.Millisecond))
			resp, err := c.Send(context.Background(), refEvents("mine")[0x10])
			require.Error(t, err, "got %v", resp)
			require.Nil(t, resp)
		})
		t.Run(enc+"/duplicate", func(t *testing.T) {
			t.Parallel()
			n := 0
			a := startRefAgent(t, true, func(c *refConn, typ byte, ev map[string]any) {
				cid := ev["correlation_id"].(string)
				n++
				if n == 1 { // answers the first event twice
					c.answer(cid, "allow", nil)
					c.answer(cid, "allow", nil)
					return
				}
				c.answer(cid, c.block(403, "second"), nil)
			})
			c := dialRef(t, a, enc)
			ctx := context.Background()
			resp, err := c.Send(ctx, refEvents("r1")[0x10])
			require.NoError(t, err)
			require.NotNil(t, resp.GetAllow())
			require.Eventually(t, func() bool { return c.Status().DuplicateResponses == 1 }, 5*time.Second, 5*time.Millisecond)
			// The over-answered request cannot be matched on this connection
			// any more; other requests can.
			resp, err = c.Send(ctx, refEvents("r1")[0x11])
			require.Error(t, err, "got %v", resp)
			require.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(err))
			resp, err = c.Send(ctx, refEvents("r2")[0x10])
			require.NoError(t, err)
			require.Equal(t, uint32(403), resp.GetBlock().GetStatus())
		})
		for name, payload := range map[string]string{
			"garbage":           "\xc1\xff{not}",
			"no correlation id": `{"version":2,"decision":"allow"}`,
			"unknown decision":  `{"version":2,"decision":"perhaps","audit":{"custom":{"correlation_id":"r"}}}`,
			// Edits answering request headers fit no chunk or frame (ErrMisplacedEdit).
			"misplaced body mutation":      `{"decision":"allow","audit":{"custom":{"correlation_id":"r"}},"request_body_mutation":{"data":"eA==","chunk_index":0}}`,
			"misplaced websocket decision": `{"decision":"allow","audit":{"custom":{"correlation_id":"r"}},"websocket_decision":"drop"}`,
		} {
			t.Run(enc+"/"+name, func(t *testing.T) {
				t.Parallel()
				a := startRefAgent(t, true, func(c *refConn, typ byte, ev map[string]any) {
					c.write(0x20, []byte(payload))
				})
				c := dialRef(t, a, enc, transport.WithCallTimeout(time.Second))
				resp, err := c.Send(context.Background(), refEvents("r")[0x10])
				require.Error(t, err, "got %v", resp)
				require.Nil(t, resp)
				require.NotEqual(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err), "%v", err)
			})
		}
	}
}

// TestReferenceAgentEdits: a reference agent's body mutation and websocket
// verdict reach the caller when they answer the chunk or frame they edit.
func TestReferenceAgentEdits(t *testing.T) {
	t.Parallel()
	for _, enc := range []string{"json", "msgpack"} {
		t.Run(enc, func(t *testing.T) {
			t.Parallel()
			a := startRefAgent(t, true, func(c *refConn, typ byte, ev map[string]any) {
				cid, _ := ev["correlation_id"].(string)
				switch typ {
				case 0x11:
					c.write(0x20, []byte(`{"decision":"allow","audit":{"custom":{"correlation_id":"`+cid+`"}},"request_body_mutation":{"data":"eA==","chunk_index":0}}`))
				case 0x15:
					c.write(0x20, []byte(`{"decision":"allow","audit":{"custom":{"correlation_id":"`+cid+`"}},"websocket_decision":{"close":{"code":4000,"reason":"bye"}}}`))
				default:
					c.answer(cid, "allow", nil)
				}
			})
			c := dialRef(t, a, enc)
			ctx := context.Background()
			resp, err := c.Send(ctx, refEvents("r")[0x11])
			require.NoError(t, err)
			require.Equal(t, []byte("x"), resp.GetRequestBodyMutation().GetData())
			resp, err = c.Send(ctx, refEvents("w")[0x15])
			require.NoError(t, err)
			require.Equal(t, uint32(4000), resp.GetWebsocketDecision().GetCloseCode())
			require.Equal(t, "bye", resp.GetWebsocketDecision().GetCloseReason())
		})
	}
}

// TestGoSDKDialectAgent: an agent of the reference's Go SDK answers any
// handshake it cannot read in its own dialect; the dial says so.
func TestGoSDKDialectAgent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(shortTempDir(t), "gosdk.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				if _, _, err := readRefFrame(nc); err != nil {
					return
				}
				(&refConn{nc: nc}).write(0x02, []byte(`{"protocol_version":2,"agent_name":"go","capabilities":null,"error":"unsupported protocol version","accepted":false}`))
				_, _, _ = readRefFrame(nc)
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = transport.Dial(ctx, "unix://"+path)
	require.ErrorContains(t, err, "zentinel-agent-go-sdk")
}
