package codec

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/frametest"
)

// requestHeadersEvent is a typical browser API request (see
// frametest.RequestHeaders).
var requestHeadersEvent = frametest.RequestHeaders

// allowDecision lets a request through with one header added.
func allowDecision(id uint64) *agentv2.AgentToProxy {
	return &agentv2.AgentToProxy{
		EventId: id,
		Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{
			CorrelationId:    "01JD8Z4M6X2T7K3B5N8R1C4VQE",
			Decision:         &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}},
			RequestHeaders:   []*agentv2.HeaderOp{{Operation: &agentv2.HeaderOp_Set{Set: &agentv2.Header{Name: "x-waf-score", Value: "3"}}}},
			ProcessingTimeMs: proto.Uint64(1),
		}},
	}
}

// blockDecision blocks a request and says why.
func blockDecision(id uint64) *agentv2.AgentToProxy {
	return &agentv2.AgentToProxy{
		EventId: id,
		Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{
			CorrelationId: "01JD8Z4M6X2T7K3B5N8R1C4VQE",
			Decision: &agentv2.AgentResponse_Block{Block: &agentv2.BlockDecision{
				Status:  403,
				Body:    proto.String(`{"error":"forbidden"}`),
				Headers: []*agentv2.Header{{Name: "content-type", Value: "application/json"}},
			}},
			Audit: &agentv2.AuditMetadata{
				Tags:        []string{"attack-sqli", "OWASP_CRS"},
				RuleIds:     []string{"942100", "949110"},
				Confidence:  proto.Float32(0.97),
				ReasonCodes: []string{"SQLI_DETECTED"},
				Custom:      map[string]string{"paranoia_level": "2"},
			},
			ProcessingTimeMs: proto.Uint64(2),
		}},
	}
}

type benchCase struct {
	name string
	m    message
	d    direction
}

func benchCases() []benchCase {
	return []benchCase{
		{name: "request_headers", m: requestHeadersEvent(1), d: proxyToAgent},
		{name: "decision_allow", m: allowDecision(1), d: agentToProxy},
		{name: "decision_block", m: blockDecision(1), d: agentToProxy},
		{name: "body_chunk_16KiB", m: bodyChunk(1, 16<<10), d: proxyToAgent},
	}
}

// BenchmarkEncodeDecode encodes a frame and decodes it (safe) per op.
func BenchmarkEncodeDecode(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			frame, err := AppendFrame(nil, bc.m, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			buf := make([]byte, 0, len(frame))
			out := bc.d.new()
			for b.Loop() {
				buf, err = AppendFrame(buf[:0], bc.m, 0)
				if err != nil {
					b.Fatal(err)
				}
				if err := Decode(out, agentv2.FrameType(buf[4]), buf[agentv2.FrameHeaderSize:], bc.d.known, false); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(frame)), "frame-bytes")
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			frame, err := AppendFrame(nil, bc.m, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			buf := make([]byte, 0, len(frame))
			for b.Loop() {
				if buf, err = AppendFrame(buf[:0], bc.m, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode compares the copying decoder with the aliasing one.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range benchCases() {
		frame, err := AppendFrame(nil, bc.m, 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, unsafe := range []bool{false, true} {
			name := "safe"
			if unsafe {
				name = "unsafe"
			}
			b.Run(bc.name+"/"+name, func(b *testing.B) {
				b.SetBytes(int64(len(frame)))
				b.ReportAllocs()
				out := bc.d.new()
				t := agentv2.FrameType(frame[4])
				payload := frame[agentv2.FrameHeaderSize:]
				for b.Loop() {
					if err := Decode(out, t, payload, bc.d.known, unsafe); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// loopReader replays b forever, like a peer sending the same frame.
type loopReader struct {
	b   []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}

// BenchmarkReader reads frames from a byte stream through the Reader.
func BenchmarkReader(b *testing.B) {
	for _, bc := range benchCases() {
		frame, err := AppendFrame(nil, bc.m, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			r := NewReader(&loopReader{b: frame}, 0)
			out := bc.d.new()
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.d.read(r, out, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriter measures Write throughput into io.Discard with one writer
// and with 64 concurrent ones sharing the flusher.
// TestBenchmarkMessages keeps the benchmark messages honest: the request
// event is the size the benchmarks claim, and every message round-trips.
func TestBenchmarkMessages(t *testing.T) {
	t.Parallel()
	if n := requestHeadersEvent(1).SizeVT() + agentv2.FrameHeaderSize; n < 300 || n > 600 {
		t.Errorf("request headers frame is %d bytes, want 300..600", n)
	}
	for _, bc := range benchCases() {
		frame := encode(t, nil, bc.m)
		got := bc.d.new()
		if err := bc.d.read(NewReader(bytes.NewReader(frame), 0), got, false); err != nil {
			t.Fatalf("%s: %v", bc.name, err)
		}
		bc.d.equal(t, got, bc.m)
	}
}
