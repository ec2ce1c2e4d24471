package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
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
	rm := m.ProtoReflect()
	if got := string(rm.Descriptor().FullName()); got != info.Envelope {
		t.Fatalf("frame 0x%02x: table says envelope %s, message is %s", uint8(info.Type), info.Envelope, got)
	}
	fd := rm.Descriptor().Fields().ByName(protoreflect.Name(info.Field))
	if fd == nil || fd.ContainingOneof() == nil || fd.Message() == nil {
		t.Fatalf("frame 0x%02x: %s has no oneof message field %q", uint8(info.Type), info.Envelope, info.Field)
	}
	if got := string(fd.Message().FullName()); got != info.Message {
		t.Fatalf("frame 0x%02x: table says %s carries %s, the field is %s", uint8(info.Type), info.Field, info.Message, got)
	}
	f := filler{seed: seed}
	sub := rm.NewField(fd)
	f.fill(sub.Message(), 0)
	rm.Set(fd, sub)
	rm.Set(rm.Descriptor().Fields().ByName("event_id"), protoreflect.ValueOfUint64(eventID))
	return m
}

// filler sets every field of a message, recursively, to non-default values.
type filler struct{ seed int }

func (f *filler) next() int { f.seed++; return f.seed }

func (f *filler) fill(m protoreflect.Message, depth int) {
	if depth > 5 {
		return
	}
	fields := m.Descriptor().Fields()
	oneofs := m.Descriptor().Oneofs()
	// For each real oneof pick one case, varying with the seed.
	chosen := map[protoreflect.FullName]protoreflect.FieldDescriptor{}
	for i := 0; i < oneofs.Len(); i++ {
		od := oneofs.Get(i)
		if od.IsSynthetic() {
			continue
		}
		chosen[od.FullName()] = od.Fields().Get(f.next() % od.Fields().Len())
	}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && chosen[od.FullName()] != fd {
			continue
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range 2 {
				if fd.Message() != nil {
					v := l.NewElement()
					f.fill(v.Message(), depth+1)
					l.Append(v)
				} else {
					l.Append(f.scalar(fd))
				}
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range 2 {
				k := f.scalar(fd.MapKey()).MapKey()
				if fd.MapValue().Message() != nil {
					v := mp.NewValue()
					f.fill(v.Message(), depth+1)
					mp.Set(k, v)
				} else {
					mp.Set(k, f.scalar(fd.MapValue()))
				}
			}
		case fd.Message() != nil:
			f.fill(m.Mutable(fd).Message(), depth+1)
		default:
			m.Set(fd, f.scalar(fd))
		}
	}
}

func (f *filler) scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	n := f.next()
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if vals.Len() < 2 {
			return protoreflect.ValueOfEnum(vals.Get(0).Number())
		}
		return protoreflect.ValueOfEnum(vals.Get(1 + n%(vals.Len()-1)).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(-n))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(-n) << 33)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(n * 1000))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(n) << 40)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(n) + 0.25)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(float64(n) + 0.125)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d-é", fd.Name(), n))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(fmt.Sprintf("\x00\xff%s-%d", fd.Name(), n)))
	}
	panic(fmt.Sprintf("filler: unhandled kind %v", fd.Kind()))
}

// bodyChunk returns a request_body_chunk envelope with size bytes of data.
func bodyChunk(eventID uint64, size int) *agentv2.ProxyToAgent {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	return &agentv2.ProxyToAgent{
		EventId: eventID,
		Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
			CorrelationId: "corr-body",
			ChunkIndex:    uint32(eventID),
			Data:          data,
		}},
	}
}

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
func checkErr(t testing.TB, err error, sentinel error, code agentwire.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v (%v)", sentinel, code)
	}
	var aerr *agentwire.Error
	if !errors.As(err, &aerr) {
		t.Errorf("error %v (%T) is not an *agentwire.Error", err, err)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("error %v does not wrap %v", err, sentinel)
	}
	if got := agentwire.CodeOf(err); got != code {
		t.Errorf("CodeOf(%v) = %v, want %v", err, got, code)
	}
}

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
