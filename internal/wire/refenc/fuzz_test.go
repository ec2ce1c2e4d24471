package refenc

import (
	"testing"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// FuzzRefDecode feeds arbitrary payloads to both directions' decoders in
// both encodings: they may fail, never panic, and what they accept
// encodes again.
func FuzzRefDecode(f *testing.F) {
	for _, m := range agentMessages() {
		for _, enc := range []Encoding{JSON, MsgPack} {
			if b, err := AppendAgentToProxy(nil, enc, m, 0); err == nil {
				f.Add(byte(enc), b[4], b[headerSize:])
			}
		}
	}
	for _, m := range proxyMessages() {
		for _, enc := range []Encoding{JSON, MsgPack} {
			if b, err := AppendProxyToAgent(nil, enc, m, 0); err == nil {
				f.Add(byte(enc), b[4], b[headerSize:])
			}
		}
	}
	f.Fuzz(func(t *testing.T, e, ft byte, p []byte) {
		enc := Encoding(e%2 + 1)
		var a agentv2.AgentToProxy
		if DecodeAgentToProxy(enc, agentv2.FrameType(ft), p, &a) == nil {
			if _, err := AppendAgentToProxy(nil, enc, &a, 0); err != nil && ft != 0x32 {
				t.Errorf("re-encode %v: %v", &a, err)
			}
		}
		var m agentv2.ProxyToAgent
		if DecodeProxyToAgent(enc, agentv2.FrameType(ft), p, &m) == nil {
			if _, err := AppendProxyToAgent(nil, enc, &m, 0); err != nil {
				t.Errorf("re-encode %v: %v", &m, err)
			}
		}
		_, _ = RegistrationIn(p)
		_, _ = RegistrationResponseIn(p)
	})
}
