package wire

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/frametest"
)

// envelope is what both generated envelopes are to these tests.
type envelope interface {
	codec.Frame
	FrameType() agentv2.FrameType
	proto.Message
	UnmarshalFrame(t agentv2.FrameType, payload []byte) error
	UnmarshalFrameUnsafe(t agentv2.FrameType, payload []byte) error
	Reset()
}

// direction is one envelope type's frame table.
type direction struct {
	name   string
	frames []agentv2.FrameInfo
	known  func(agentv2.FrameType) bool
	new    func() envelope
}

var directions = []direction{
	{"ProxyToAgent", agentv2.ProxyToAgentFrames, agentv2.IsProxyToAgentFrame, func() envelope { return &agentv2.ProxyToAgent{} }},
	{"AgentToProxy", agentv2.AgentToProxyFrames, agentv2.IsAgentToProxyFrame, func() envelope { return &agentv2.AgentToProxy{} }},
}

// TestAppendFrameCapacities: whatever the capacity of the scratch buffer
// a frame is appended to (the FrameWriter's come in every size), the frame
// is encoded whole and byte for byte as codec.AppendFrame encodes it into
// an empty buffer, for every frame type of both directions: the envelope
// is sized first, so no buffer is too small.
func TestAppendFrameCapacities(t *testing.T) {
	t.Parallel()
	for _, d := range directions {
		for _, info := range d.frames {
			t.Run(fmt.Sprintf("%s/%s", d.name, info.Field), func(t *testing.T) {
				t.Parallel()
				m := d.new()
				frametest.Populate(t, m, info, 77, int(info.Type))
				want, err := codec.AppendFrame(nil, m, 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, size := range []int{0, 3, agentv2.FrameHeaderSize, len(want) - 1, len(want), len(want) + 1, 4 << 10} {
					frame, err := codec.AppendFrame(make([]byte, 0, size), m, codec.DefaultMaxFrameSize)
					if err != nil {
						t.Fatalf("capacity %d: %v", size, err)
					}
					if !sameFrame(t, d, frame, want) {
						t.Fatalf("capacity %d: got\n%x\nwant\n%x", size, frame, want)
					}
				}
			})
		}
	}
}

// sameFrame compares two encodings of a frame: byte for byte, or, as maps
// are encoded in no set order, by header and decoded content.
func sameFrame(t *testing.T, d direction, got, want []byte) bool {
	t.Helper()
	if bytes.Equal(got, want) {
		return true
	}
	if len(got) != len(want) || !bytes.Equal(got[:agentv2.FrameHeaderSize], want[:agentv2.FrameHeaderSize]) {
		return false
	}
	a, b := d.new(), d.new()
	typ := agentv2.FrameType(got[4])
	if err := codec.Decode(a, typ, got[agentv2.FrameHeaderSize:], d.known, false); err != nil {
		t.Fatal(err)
	}
	if err := codec.Decode(b, typ, want[agentv2.FrameHeaderSize:], d.known, false); err != nil {
		t.Fatal(err)
	}
	return proto.Equal(a, b)
}

// TestAppendFrameLimits: an oversize frame fails with ErrFrameTooLarge
// and leaves the buffer as it was; an envelope without a case fails too.
func TestAppendFrameLimits(t *testing.T) {
	t.Parallel()
	m := bodyChunk(1, 1000)
	buf := make([]byte, 3, 4<<10)
	out, err := codec.AppendFrame(buf, m, 500)
	checkErr(t, err, codec.ErrFrameTooLarge, agentwire.CodeResourceExhausted)
	if len(out) != len(buf) {
		t.Fatalf("an oversize frame left %d bytes, want %d", len(out), len(buf))
	}
	if _, err := codec.AppendFrame(buf, &agentv2.ProxyToAgent{}, 0); agentwire.CodeOf(err) != agentwire.CodeInvalidArgument {
		t.Fatalf("an envelope without a case: %v", err)
	}
}

// TestWriterFrameSizes: frames larger than the scratch buffers, and
// smaller ones of the same type after them, arrive intact.
func TestWriterFrameSizes(t *testing.T) {
	t.Parallel()
	client, server := socketPair(t)
	w := NewFrameWriter(client, 0, 0)
	stop := runWriter(w)
	defer stop()
	sizes := []int{10, 8 << 10, 100, 100 << 10, 50, 3 << 10, 70 << 10, 1}
	go func() {
		for i, n := range sizes {
			if err := w.WriteBatched(t.Context(), bodyChunk(uint64(i+1), n)); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
		}
	}()
	r := codec.NewReader(server, 0)
	for i, n := range sizes {
		var got agentv2.ProxyToAgent
		if err := r.ReadProxyToAgent(&got); err != nil {
			t.Fatal(err)
		}
		if got.GetEventId() != uint64(i+1) || len(got.GetRequestBodyChunk().GetData()) != n {
			t.Fatalf("frame %d: event %d with %d bytes, want %d", i, got.GetEventId(), len(got.GetRequestBodyChunk().GetData()), n)
		}
	}
}
