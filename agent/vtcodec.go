package agent

import (
	"bytes"
	"fmt"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// vtMessage is what vtprotobuf generates for every message of the schema.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT(dAtA []byte) (int, error)
	UnmarshalVT(dAtA []byte) error
}

// grpcCodec is a grpc-go codec named "proto" that encodes the schema's
// messages with their generated vtprotobuf methods, and any other message
// (health, reflection) with the default codec.
type grpcCodec struct{}

var _ encoding.CodecV2 = grpcCodec{}

func (grpcCodec) Name() string { return grpcproto.Name }

func (grpcCodec) Marshal(v any) (mem.BufferSlice, error) {
	if t, ok := v.(*sendTarget); ok {
		return t.encode()
	}
	m, ok := v.(vtMessage)
	if !ok {
		return encoding.GetCodecV2(grpcproto.Name).Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if _, err := m.MarshalToSizedBufferVT(buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if _, err := m.MarshalToSizedBufferVT((*buf)[:size]); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func (grpcCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if t, ok := v.(*rpcTarget); ok {
		m, err := t.dec.decodeSlice(data)
		if err != nil {
			return err
		}
		t.ProxyToAgent = m
		return nil
	}
	if p, ok := v.(*agentv2.ProxyToAgent); ok {
		return decodeInPlace(p, data.Materialize())
	}
	m, ok := v.(vtMessage)
	if !ok {
		return encoding.GetCodecV2(grpcproto.Name).Unmarshal(data, v)
	}
	reset(v)
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	// UnmarshalVT copies strings and bytes, so m outlives buf.
	return m.UnmarshalVT(buf.ReadOnlyData())
}

// connectCodec is the Connect counterpart of grpcCodec.
type connectCodec struct{}

func (connectCodec) Name() string { return "proto" }

func (c connectCodec) Marshal(v any) ([]byte, error) { return c.MarshalAppend(nil, v) }

func (connectCodec) MarshalAppend(dst []byte, v any) ([]byte, error) {
	m, ok := v.(vtMessage)
	if !ok {
		pm, ok := v.(proto.Message)
		if !ok {
			return nil, fmt.Errorf("agent: %T is not a protobuf message", v)
		}
		return proto.MarshalOptions{}.MarshalAppend(dst, pm)
	}
	size := m.SizeVT()
	start := len(dst)
	dst = append(dst, make([]byte, size)...)
	if _, err := m.MarshalToSizedBufferVT(dst[start:]); err != nil {
		return dst[:start], err
	}
	return dst, nil
}

func (connectCodec) Unmarshal(data []byte, v any) error {
	if t, ok := v.(*rpcTarget); ok {
		m, err := t.dec.decode(data)
		if err != nil {
			return err
		}
		t.ProxyToAgent = m
		return nil
	}
	if p, ok := v.(*agentv2.ProxyToAgent); ok {
		return decodeInPlace(p, bytes.Clone(data))
	}
	if m, ok := v.(vtMessage); ok {
		reset(v)
		return m.UnmarshalVT(data)
	}
	pm, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("agent: %T is not a protobuf message", v)
	}
	return proto.Unmarshal(data, pm)
}

// decodeInPlace decodes an event envelope whose strings and bytes share
// buf, one allocation, instead of being allocated one by one. buf must be
// the message's own: it lives as long as the message.
func decodeInPlace(p *agentv2.ProxyToAgent, buf []byte) error {
	p.Reset()
	if err := p.UnmarshalVTUnsafe(buf); err != nil {
		return err
	}
	p.ClipBytes()
	return nil
}

// reset clears a message before decoding into it, as proto.Unmarshal does:
// UnmarshalVT merges.
func reset(v any) {
	if r, ok := v.(interface{ Reset() }); ok {
		r.Reset()
	}
}

// Sizes of the chunks a sendTarget carves: 4 KiB of encoded messages (some
// sixty decisions) and the buffer headers of 64 messages, so that an idle
// stream pins little.
const (
	sendChunkSize   = 4 << 10
	sendHeaderChunk = 64
)

// sendTarget is what a gRPC stream sends from. The codec encodes the
// embedded message into bytes carved from the target's slab, and carves
// the buffer header and the one-element buffer slice grpc-go takes from
// chunks too: instead of three allocations per message, a few per chunk.
// grpc-go may write the bytes after SendMsg returned: chunks are never
// reused, the garbage collector frees them. The embedding lets
// interceptors, stats handlers and other codecs see a proto.Message. The
// stream serialises sends, so one goroutine at a time uses a target.
type sendTarget struct {
	*agentv2.AgentToProxy
	data slab
	hdrs []mem.SliceBuffer
	bufs []mem.Buffer
}

func newSendTarget() sendTarget { return sendTarget{data: slab{max: sendChunkSize}} }

// encode encodes the embedded message.
func (t *sendTarget) encode() (mem.BufferSlice, error) {
	size := t.SizeVT()
	buf := t.data.alloc(size)
	if _, err := t.MarshalToSizedBufferVT(buf); err != nil {
		return nil, err
	}
	if len(t.hdrs) == 0 {
		t.hdrs = make([]mem.SliceBuffer, sendHeaderChunk)
	}
	if len(t.bufs) == 0 {
		t.bufs = make([]mem.Buffer, sendHeaderChunk)
	}
	h := &t.hdrs[0]
	*h = buf
	t.hdrs = t.hdrs[1:]
	t.bufs[0] = h
	bs := t.bufs[:1:1]
	t.bufs = t.bufs[1:]
	return bs, nil
}
