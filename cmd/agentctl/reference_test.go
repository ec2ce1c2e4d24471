package main

import (
	"testing"

	"github.com/agentwire/agentwire/internal/reftest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startRefAgent serves internal/reftest's reference-style agent (Zentinel's
// uds_server.rs behaviour) and returns its unix:// endpoint.
func startRefAgent(t *testing.T, encs ...reftest.Encoding) string {
	t.Helper()
	a := &reftest.Agent{Caps: reftest.SampleCapabilities, Encodings: encs,
		Handle: func(ev reftest.Event) reftest.Response {
			if h, ok := ev.(reftest.RequestHeaders); ok && h.URI == "/admin" {
				return reftest.Response{Version: 2, Decision: reftest.Decision{Kind: "block", Status: 403}}
			}
			return reftest.Response{Version: 2, Decision: reftest.Decision{Kind: "allow"}}
		}}
	path := socketPath(t)
	a.ServeUnix(t, path)
	return "unix://" + path
}

// TestReferenceAgent: probe and send work against a reference agent in
// both encodings, detected or named in the endpoint.
func TestReferenceAgent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		encs  []reftest.Encoding
		query string
	}{
		{"msgpack detected", nil, ""},
		{"json detected", []reftest.Encoding{reftest.JSON}, ""},
		{"msgpack named", nil, "?encoding=msgpack"},
		{"json named", nil, "?encoding=json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ep := startRefAgent(t, tc.encs...) + tc.query
			code, out, errOut := runBinary(t, "probe", ep)
			t.Logf("\n%s%s", out, errOut)
			require.Equal(t, 0, code, "%s%s", out, errOut)
			assert.Regexp(t, `(?m)^agent\s+waf-1  name waf  version 1.2.0$`, out)
			assert.Regexp(t, `(?m)^protocol\s+2$`, out)
			code, out, errOut = runBinary(t, "send", ep, "-uri", "/admin")
			require.Equal(t, 0, code, "%s%s", out, errOut)
			assert.Regexp(t, `(?m)^  decision\s+BLOCK 403$`, out)
			code, out, errOut = runBinary(t, "send", ep, "-uri", "/shop", "-body", "x=1")
			require.Equal(t, 0, code, "%s%s", out, errOut)
			assert.Regexp(t, `(?m)^request_body_chunk\n  decision\s+ALLOW`, out)
		})
	}
	code, _, errOut := runBinary(t, "probe", startRefAgent(t)+"?encoding=yaml")
	require.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "unknown encoding")
}
