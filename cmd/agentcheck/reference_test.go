package main

import (
	"testing"

	"github.com/agentwire/agentwire/internal/reftest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReferenceAgent runs the conformance checks against internal/reftest's
// reference-style agent (Zentinel's uds_server.rs behaviour), in each
// encoding: agentcheck dials through transport, which speaks its wire.
func TestReferenceAgent(t *testing.T) {
	t.Parallel()
	for _, enc := range []reftest.Encoding{reftest.JSON, reftest.MsgPack} {
		t.Run(string(enc), func(t *testing.T) {
			t.Parallel()
			caps := reftest.SampleCapabilities
			caps.Features = map[string]any{"streaming_body": true, "concurrent_requests": uint64(64), "cancellation": true}
			a := &reftest.Agent{Caps: caps, Encodings: []reftest.Encoding{enc},
				Handle: func(ev reftest.Event) reftest.Response {
					if h, ok := ev.(reftest.RequestHeaders); ok && h.URI == "/admin" {
						return reftest.Response{Version: 2, Decision: reftest.Decision{Kind: "block", Status: 403}}
					}
					return reftest.Response{Version: 2}
				}}
			path := socketPath(t)
			a.ServeUnix(t, path)
			code, out, errOut := runBinary(t, "unix://"+path)
			t.Logf("\n%s%s", out, errOut)
			// The one failure is the reference's: its agents accept any
			// protocol version (server.rs on_handshake).
			require.Equal(t, exitFail, code)
			got := rows(t, out)
			assert.Equal(t, "FAIL", got["handshake/unsupported-version"])
			delete(got, "handshake/unsupported-version")
			assert.NotContains(t, got, "FAIL")
			for _, name := range []string{"frames/malformed", "frames/oversize", "frames/unknown-type"} {
				assert.Regexp(t, `(?m)^`+name+`\s+SKIP\s+\S+\s+protobuf frames only \(the agent speaks the reference's `+string(enc)+`\)$`, out)
			}
		})
	}
}
