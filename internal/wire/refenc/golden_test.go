package refenc

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// loadGolden reads internal/reftest/testdata/<name>: its header comment
// and its frame.
func loadGolden(t *testing.T, path string) (dir string, frame []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var hexText []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			if dir == "" {
				dir = line
			}
			continue
		}
		hexText = append(hexText, strings.Fields(line)...)
	}
	frame, err = hex.DecodeString(strings.Join(hexText, ""))
	if err != nil {
		t.Fatal(err)
	}
	return dir, frame
}

// lossy are golden frames carrying reference fields agentwire's envelopes
// have no place for (so re-encoding cannot give the same bytes); they
// must still decode.
var lossy = map[string]string{
	"request_headers":          "timestamp without millis; tls_cipher",
	"request_complete":         "upstream_attempts",
	"websocket_frame":          "frame_index, client_ip",
	"configure":                "the configure event's correlation id",
	"guardrail_inspect":        "categories and metadata travel in context_json",
	"handshake_request_legacy": "no supported_encodings",
	"registration_request":     "",
	"registration_response":    "",
}

// TestGoldenFrames decodes every golden frame of internal/reftest and,
// where the envelope holds all it says, re-encodes it byte for byte.
func TestGoldenFrames(t *testing.T) {
	t.Parallel()
	paths, _ := filepath.Glob("../../reftest/testdata/*.hex")
	if len(paths) == 0 {
		t.Skip("no golden frames (internal/reftest/testdata)")
	}
	for _, path := range paths {
		base := strings.TrimSuffix(filepath.Base(path), ".hex")
		name, encName, _ := strings.Cut(base, ".")
		t.Run(base, func(t *testing.T) {
			dir, frame := loadGolden(t, path)
			enc, err := ParseEncoding(encName)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(name, "handshake_response_") {
				enc = Encoding(map[bool]uint8{true: uint8(MsgPack), false: uint8(JSON)}[strings.Contains(name, "msgpack")])
			}
			typ, p := agentv2.FrameType(frame[4]), frame[headerSize:]
			var out []byte
			switch {
			case strings.HasPrefix(name, "registration_request"):
				reg, err := RegistrationIn(p)
				if err != nil {
					t.Fatal(err)
				}
				out, err = AppendRegistration(nil, reg)
				if err != nil {
					t.Fatal(err)
				}
			case strings.HasPrefix(name, "registration_response"):
				resp, err := RegistrationResponseIn(p)
				if err != nil {
					t.Fatal(err)
				}
				out, _ = AppendRegistrationResponse(nil, resp)
			case strings.Contains(dir, "proxy->agent"):
				var m agentv2.ProxyToAgent
				if err := DecodeProxyToAgent(enc, typ, p, &m); err != nil {
					t.Fatalf("%s: %v", dir, err)
				}
				out, err = AppendProxyToAgent(nil, enc, &m, 0)
				if err != nil {
					t.Fatal(err)
				}
			default:
				var m agentv2.AgentToProxy
				if err := DecodeAgentToProxy(enc, typ, p, &m); err != nil {
					t.Fatalf("%s: %v", dir, err)
				}
				out, err = AppendAgentToProxy(nil, enc, &m, 0)
				if err != nil {
					t.Fatal(err)
				}
			}
			name = strings.TrimSuffix(name, "_udsrs")
			if _, ok := lossy[name]; ok || strings.HasSuffix(base, "_udsrs.msgpack") {
				return
			}
			if !bytes.Equal(out, frame) {
				t.Errorf("%s\nre-encoded % x\n    golden % x\n%s\n%s", dir, out, frame, out[headerSize:], frame[headerSize:])
			}
		})
	}
}
