package refenc

import (
	"testing"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// BenchmarkProxyRoundTrip is the proxy's share of one decision: encode
// request headers, decode an allow with a header mutation.
func BenchmarkProxyRoundTrip(b *testing.B) {
	ev := proxyMessages()["request_headers"]
	resp := agentMessages()["block"]
	for _, enc := range []Encoding{JSON, MsgPack} {
		frame, _ := AppendAgentToProxy(nil, enc, resp, 0)
		b.Run(enc.String(), func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			var m agentv2.AgentToProxy
			for b.Loop() {
				buf, _ = AppendProxyToAgent(buf[:0], enc, ev, 0)
				if err := DecodeAgentToProxy(enc, 0x20, frame[headerSize:], &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
