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
	tailFrame
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

// TestEncodeTail: a frame encoded at the end of a buffer is byte for byte
// the frame codec.AppendFrame encodes, for every frame type of both directions;
// one that does not fit is declined, and the type is then skipped until a
// buffer is large enough.
func TestEncodeTail(t *testing.T) {
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
					var s frameSizes
					frame, ok, err := s.encodeTail(make([]byte, 0, size), m, codec.DefaultMaxFrameSize)
					if err != nil {
						t.Fatalf("capacity %d: %v", size, err)
					}
					if ok != (size >= len(want)) {
						t.Fatalf("capacity %d for a %d-byte frame: ok %v", size, len(want), ok)
					}
					if ok && !sameFrame(t, d, frame, want) {
						t.Fatalf("capacity %d: got\n%x\nwant\n%x", size, frame, want)
					}
				}
				// Once a frame of the type did not fit, a smaller buffer is
				// not tried again.
				var s frameSizes
				s.note(info.Type, len(want)-agentv2.FrameHeaderSize)
				if _, ok, _ := s.encodeTail(make([]byte, 0, len(want)-1), m, codec.DefaultMaxFrameSize); ok {
					t.Fatal("a type known not to fit was tried")
				}
				if _, ok, _ := s.encodeTail(make([]byte, 0, len(want)), m, codec.DefaultMaxFrameSize); !ok {
					t.Fatal("a buffer large enough was not used")
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

func TestEncodeTailLimits(t *testing.T) {
	t.Parallel()
	var s frameSizes
	m := bodyChunk(1, 1000)
	_, ok, err := s.encodeTail(make([]byte, 0, 4<<10), m, 500)
	if ok {
		t.Fatal("an oversize frame was encoded")
	}
	checkErr(t, err, codec.ErrFrameTooLarge, agentwire.CodeResourceExhausted)
	// No case set: left to codec.AppendFrame, which says why.
	if _, ok, err := s.encodeTail(make([]byte, 0, 4<<10), &agentv2.ProxyToAgent{}, 0); ok || err != nil {
		t.Fatalf("an envelope without a case: ok %v, err %v", ok, err)
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
