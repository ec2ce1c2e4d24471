package codec

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/frametest"
)

// message is what both envelopes have in common.
type message interface {
	proto.Message
	Frame
	envelope
	FrameType() agentv2.FrameType
	GetEventId() uint64
}

// direction bundles one envelope type's generated tables and the codec
// calls for it, so every test runs over both directions.
type direction struct {
	name      string
	frames    []agentv2.FrameInfo
	known     func(agentv2.FrameType) bool
	frameName func(agentv2.FrameType) string
	new       func() message
	read      func(r *Reader, m message, unsafe bool) error
	equalVT   func(a, b message) bool
}

var (
	proxyToAgent = direction{
		name:      "ProxyToAgent",
		frames:    agentv2.ProxyToAgentFrames,
		known:     agentv2.IsProxyToAgentFrame,
		frameName: agentv2.ProxyToAgentFrameName,
		new:       func() message { return &agentv2.ProxyToAgent{} },
		read: func(r *Reader, m message, unsafe bool) error {
			if unsafe {
				return r.ReadProxyToAgentUnsafe(m.(*agentv2.ProxyToAgent))
			}
			return r.ReadProxyToAgent(m.(*agentv2.ProxyToAgent))
		},
		equalVT: func(a, b message) bool { return a.(*agentv2.ProxyToAgent).EqualVT(b.(*agentv2.ProxyToAgent)) },
	}
	agentToProxy = direction{
		name:      "AgentToProxy",
		frames:    agentv2.AgentToProxyFrames,
		known:     agentv2.IsAgentToProxyFrame,
		frameName: agentv2.AgentToProxyFrameName,
		new:       func() message { return &agentv2.AgentToProxy{} },
		read: func(r *Reader, m message, unsafe bool) error {
			if unsafe {
				return r.ReadAgentToProxyUnsafe(m.(*agentv2.AgentToProxy))
			}
			return r.ReadAgentToProxy(m.(*agentv2.AgentToProxy))
		},
		equalVT: func(a, b message) bool { return a.(*agentv2.AgentToProxy).EqualVT(b.(*agentv2.AgentToProxy)) },
	}
	directions = []direction{proxyToAgent, agentToProxy}
)

// populated returns an envelope of d with the case of info set to a message
// whose fields are all filled (values vary with seed), and event_id set.
func (d direction) populated(t testing.TB, info agentv2.FrameInfo, eventID uint64, seed int) message {
	t.Helper()
	m := d.new()
	frametest.Populate(t, m, info, eventID, seed)
	return m
}

// bodyChunk returns a request_body_chunk envelope with size bytes of data.
var bodyChunk = frametest.BodyChunk

// encode appends m as a frame, failing the test on error.
func encode(t testing.TB, dst []byte, m Frame) []byte {
	t.Helper()
	out, err := AppendFrame(dst, m, 0)
	if err != nil {
		t.Fatalf("AppendFrame: %v", err)
	}
	return out
}

// frameBytes builds a raw frame: length = 1 + len(payload).
func frameBytes(t agentv2.FrameType, payload []byte) []byte {
	b := []byte{0, 0, 0, 0, byte(t)}
	n := uint32(1 + len(payload))
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return append(b, payload...)
}

// readMode is one way of delivering a byte stream to a Reader.
type readMode struct {
	name string
	wrap func(io.Reader) io.Reader
}

var readModes = []readMode{
	{"full", func(r io.Reader) io.Reader { return r }},
	{"one-byte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"data-err", iotest.DataErrReader},
	{"one-byte-data-err", func(r io.Reader) io.Reader { return iotest.DataErrReader(iotest.OneByteReader(r)) }},
}

func (m readMode) reader(b []byte, max int) *Reader {
	return NewReader(m.wrap(bytes.NewReader(b)), max)
}

// checkErr asserts err is an *agentwire.Error wrapping sentinel with code.
var checkErr = frametest.CheckErr

// checkEOF asserts err reports a clean end of stream.
func checkEOF(t testing.TB, err error) {
	t.Helper()
	checkErr(t, err, io.EOF, agentwire.CodeUnavailable)
	if errors.Is(err, ErrTruncated) {
		t.Errorf("clean EOF reported as truncated: %v", err)
	}
}

// equal reports whether two envelopes are equal by both vtprotobuf and
// protobuf-go's reflection.
func (d direction) equal(t testing.TB, got, want message) {
	t.Helper()
	if !d.equalVT(got, want) || !proto.Equal(got, want) {
		t.Errorf("decoded message differs\n got: %v\nwant: %v", got, want)
	}
}
