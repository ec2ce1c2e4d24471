package transport_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentwire/agentwire/internal/reftest"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/require"
)

// startPeer serves internal/reftest's reference-style agent (written apart
// from both this package and refenc) on a fresh socket.
func startPeer(t *testing.T, a *reftest.Agent) string {
	t.Helper()
	path := filepath.Join(shortTempDir(t), "peer.sock")
	a.ServeUnix(t, path)
	return path
}

// TestReferencePeer runs internal/reftest's agent, in each encoding, with
// each of its faults: a lie, a second answer, garbage, a missing
// correlation id, a stall. None may turn into an allow.
func TestReferencePeer(t *testing.T) {
	t.Parallel()
	for _, enc := range []reftest.Encoding{reftest.JSON, reftest.MsgPack} {
		for name, f := range map[string]reftest.Fault{
			"behaves": {}, "lie": {WrongID: "other"}, "garbage": {Garbage: true},
			"omit": {Omit: true}, "stall": {Stall: true},
		} {
			t.Run(string(enc)+"/"+name, func(t *testing.T) {
				t.Parallel()
				a := &reftest.Agent{Caps: reftest.SampleCapabilities, Encodings: []reftest.Encoding{enc},
					Handle: func(ev reftest.Event) reftest.Response {
						return reftest.Response{Version: 2, Decision: reftest.Decision{Kind: "block", Status: 403}}
					},
					Faults: func(reftest.Event) reftest.Fault { return f }}
				path := startPeer(t, a)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				c, err := transport.Dial(ctx, "unix://"+path, transport.WithCallTimeout(300*time.Millisecond))
				require.NoError(t, err)
				defer c.Close(context.Background())
				for typ, ev := range refEvents("peer-1") {
					resp, err := c.Send(ctx, ev)
					if name == "behaves" {
						require.NoError(t, err, "event 0x%02x", typ)
						if typ != 0x17 { // uds_server.rs answers configure itself
							require.Equal(t, uint32(403), resp.GetBlock().GetStatus(), "event 0x%02x", typ)
						}
						continue
					}
					require.Error(t, err, "event 0x%02x answered %v", typ, resp)
					require.Nil(t, resp)
					if c.Err() != nil {
						return // the connection failed (garbage): every call with it
					}
				}
			})
		}
	}
}
