package transport

import (
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Decisions are the proxy's hottest input, and each is decoded into memory
// its caller then owns, so it cannot be recycled. The generated decoder
// allocates every message, oneof wrapper and slice on its own: nine
// allocations for an allow with one header mutation, counting the copy of
// the payload its strings alias. The direct decoder generated from the
// schema (UnmarshalResponseDirect; buf.gen.yaml names what it reads)
// decodes the common shapes of response envelopes (allow or no decision,
// header mutations, processing time, needs_more) into one arena instead,
// and declines everything else (other decisions, audit metadata, errors,
// unknown or repeated envelope fields, malformed input), which then takes
// the generated decoder. response_test.go checks on random and fuzzed
// input that both decode to the same message.

// decodeResponse decodes src, an AgentToProxy envelope, into m if it is a
// response of a shape the direct decoder reads, and reports whether it
// did; m is untouched when it did not. src is copied: the caller may reuse
// it.
func decodeResponse(m *agentv2.AgentToProxy, src []byte) bool {
	return m.UnmarshalResponseDirect(src)
}
