// Package frametest builds the envelopes the frame codec's tests and the
// shared wire layer's tests write and read: every frame type with every
// field set, body chunks of any size, a typical request. It imports neither
// package, so the tests of both can use it.
package frametest

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Populate sets the case of info in env, an empty envelope of info's kind,
// to a message whose fields are all filled (values vary with seed), and
// sets event_id. It checks the generated frame table against the schema.
func Populate(t testing.TB, env proto.Message, info agentv2.FrameInfo, eventID uint64, seed int) {
	t.Helper()
	rm := env.ProtoReflect()
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

// BodyChunk returns a request_body_chunk envelope with size bytes of data.
func BodyChunk(eventID uint64, size int) *agentv2.ProxyToAgent {
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

// RequestHeaders is a typical browser API request as a proxy reports it:
// 20 headers and metadata with a traceparent, under 600 bytes framed.
func RequestHeaders(id uint64) *agentv2.ProxyToAgent {
	h := func(name, value string) *agentv2.Header { return &agentv2.Header{Name: name, Value: value} }
	return &agentv2.ProxyToAgent{
		EventId: id,
		Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
			Metadata: &agentv2.RequestMetadata{
				CorrelationId: "c-8f14e4",
				RequestId:     "r-7f3a",
				ClientIp:      "203.0.113.42",
				ClientPort:    51234,
				Protocol:      "HTTP/1.1",
				TimestampMs:   1767225600123,
				Traceparent:   proto.String("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
			},
			Method:      "POST",
			Uri:         "/v1/orders",
			HttpVersion: "HTTP/1.1",
			Headers: []*agentv2.Header{
				h("host", "api.example"),
				h("user-agent", "curl/8.5"),
				h("accept", "*/*"),
				h("accept-encoding", "gzip"),
				h("content-type", "application/json"),
				h("content-length", "182"),
				h("authorization", "Bearer x1"),
				h("cookie", "sid=9f8e"),
				h("x-request-id", "r-7f3a"),
				h("x-forwarded-for", "203.0.113.42"),
				h("x-forwarded-proto", "https"),
				h("x-api", "2"),
				h("pragma", "no-cache"),
				h("connection", "close"),
				h("te", "trailers"),
				h("dnt", "1"),
				h("via", "1.1 edge"),
				h("accept-language", "en"),
				h("priority", "u=1"),
				h("if-none-match", "\"v7\""),
			},
		}},
	}
}

// CheckErr asserts err is an *agentwire.Error wrapping sentinel with code.
func CheckErr(t testing.TB, err error, sentinel error, code agentwire.Code) {
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
