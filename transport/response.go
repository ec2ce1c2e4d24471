package transport

import (
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// decodeResponse decodes src, an AgentToProxy envelope, into m if it is a
// response of a shape the generated direct decoder reads (one arena for
// the common decisions; buf.gen.yaml names the fields), and reports
// whether it did; m is untouched otherwise. src may be reused after.
// response_test.go checks it against the generated decoder.
func decodeResponse(m *agentv2.AgentToProxy, src []byte) bool {
	return m.UnmarshalResponseDirect(src)
}
