package wire

import (
	"bytes"
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// The codec of both sides' gRPC and Connect streams, one core behind a
// grpc-go adapter ([GRPCCodec]) and a connect-go one ([ConnectCodec]),
// named "proto" as the standard one. It encodes, by the first rule that
// applies: a value that encodes itself ([BufferMarshaler] on gRPC,
// [AppendMarshaler] on Connect); a vtprotobuf message, sized first
// ([Marshal]); any other protobuf message with proto.Marshal (health,
// reflection, a user's service). It decodes: into a [Target]; into a
// vtprotobuf message in place from a copy it owns (UnmarshalVTUnsafe, one
// allocation, bytes fields clipped) or else with UnmarshalVT; into any
// other protobuf message with proto.Unmarshal. Anything else fails.

// Name is the codecs' name.
const Name = "proto"

// Message is what vtprotobuf generates for every message of the schema.
type Message interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

// BufferMarshaler is a value that encodes itself for grpc-go, which frees
// the buffers once it has written them.
type BufferMarshaler interface {
	MarshalBuffers() (mem.BufferSlice, error)
}

// AppendMarshaler is a value that appends its encoding to dst for
// connect-go. connect-go recycles what the codec returns into its pool and
// reads later messages into it, so the result must be dst grown, never
// memory someone else owns.
type AppendMarshaler interface {
	AppendWire(dst []byte) ([]byte, error)
}

// Target is a receive target that decodes itself from b, the codec's
// memory: it is valid only until UnmarshalWire returns.
type Target interface {
	UnmarshalWire(b []byte) error
}

// unsafeMessage decodes with strings and bytes aliasing its input.
type unsafeMessage interface {
	UnmarshalVTUnsafe([]byte) error
}

// GRPCCodec is the codec for grpc-go (grpc.ForceCodecV2,
// grpc.ForceServerCodecV2).
type GRPCCodec struct{}

var _ encoding.CodecV2 = GRPCCodec{}

func (GRPCCodec) Name() string { return Name }

func (GRPCCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case BufferMarshaler:
		return m.MarshalBuffers()
	case Message:
		bp, err := Marshal(m, 0)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.NewBuffer(bp, Buffers)}, nil
	}
	b, err := marshalProto(nil, v)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// Unmarshal decodes data, which grpc-go frees when it returns. A message
// in several buffers is joined in a pooled one first.
func (GRPCCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if len(data) == 1 {
		return unmarshal(data[0].ReadOnlyData(), v)
	}
	buf := data.MaterializeToBuffer(Buffers)
	defer buf.Free()
	return unmarshal(buf.ReadOnlyData(), v)
}

// ConnectCodec is the codec for connect-go (connect.WithCodec).
type ConnectCodec struct{}

func (ConnectCodec) Name() string { return Name }

func (c ConnectCodec) Marshal(v any) ([]byte, error) { return c.MarshalAppend(nil, v) }

// MarshalAppend appends v's encoding to dst, a buffer from connect-go's
// pool (see [AppendMarshaler]).
func (ConnectCodec) MarshalAppend(dst []byte, v any) ([]byte, error) {
	switch m := v.(type) {
	case AppendMarshaler:
		return m.AppendWire(dst)
	case Message:
		return AppendMarshal(dst, m)
	}
	return marshalProto(dst, v)
}

// Unmarshal decodes b, connect-go's pooled buffer, reused after it returns.
func (ConnectCodec) Unmarshal(b []byte, v any) error { return unmarshal(b, v) }

// unmarshal decodes b, which v must not keep, into v.
func unmarshal(b []byte, v any) error {
	switch m := v.(type) {
	case Target:
		return m.UnmarshalWire(b)
	case Message:
		if r, ok := v.(interface{ Reset() }); ok {
			r.Reset() // UnmarshalVT merges; proto.Unmarshal replaces
		}
		u, ok := v.(unsafeMessage)
		if !ok {
			return m.UnmarshalVT(b)
		}
		if err := u.UnmarshalVTUnsafe(bytes.Clone(b)); err != nil {
			return err
		}
		if c, ok := v.(interface{ ClipBytes() }); ok {
			c.ClipBytes()
		}
		return nil
	}
	pm, ok := protoMessage(v)
	if !ok {
		return fmt.Errorf("agentwire codec: cannot unmarshal into %T", v)
	}
	return proto.Unmarshal(b, pm)
}

// marshalProto appends the encoding of v, a protobuf message that is not
// vtprotobuf's, to dst.
func marshalProto(dst []byte, v any) ([]byte, error) {
	m, ok := protoMessage(v)
	if !ok {
		return nil, fmt.Errorf("agentwire codec: cannot marshal %T", v)
	}
	return proto.MarshalOptions{}.MarshalAppend(dst, m)
}

// protoMessage returns v as a protobuf message, as grpc-go's own codec
// takes it (legacy messages included).
func protoMessage(v any) (proto.Message, bool) {
	switch m := v.(type) {
	case proto.Message:
		return m, true
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(m), true
	}
	return nil, false
}
