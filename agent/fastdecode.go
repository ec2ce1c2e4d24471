package agent

import (
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Request headers are most of what an agent decodes, and most of their
// bytes are header names and values. The direct decoder generated from the
// schema (UnmarshalRequestHeadersDirectUnsafe; buf.gen.yaml names what it
// reads) decodes such an envelope into the recycled one shaped for it,
// reusing its header structs; for anything else (unknown fields, other
// oneof cases, wrong wire types, a malformed length) it gives up, and the
// generated decoder, which keeps unknown fields and reports errors, decodes
// the envelope from the start. Either way the result is the same message;
// TestRecycledDecodeMatchesFreshDecode and FuzzDecodeRequestHeaders compare
// the two.

// decodeRequestHeaders decodes buf, a ProxyToAgent encoding, into m, a
// cleared request-headers envelope shaped for it (see fillShape), with
// strings aliasing buf. It reports false when it gave up; m then holds a
// partial decode, which the caller clears.
func decodeRequestHeaders(m *agentv2.ProxyToAgent, buf []byte) bool {
	return m.UnmarshalRequestHeadersDirectUnsafe(buf)
}
