package agent

import (
	"bytes"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Decoding events is the agent's hottest path. Three habits keep it cheap:
// payloads live in chunks shared by many events, which the decoded
// messages' strings and bytes alias (a framed stream's copy of each read,
// see teeReader; a slab for gRPC and Connect), and which are never reused;
// answered envelopes of the hot event kinds are cleared by plain
// assignment (the generated Reset stores atomically once per message); and
// they are kept with their oneof wrapper, event and header structs for the
// next event of the same kind, which then decodes without allocating.

// Slab chunk sizes: chunks double from the first payload's size up to
// slabChunkSize (or a slab's own max), which holds about thirty header
// events; a payload larger than a quarter of the largest chunk
// (slabMaxPiece by default) gets its own allocation.
const (
	slabChunkSize = 16 << 10
	slabMaxPiece  = slabChunkSize / 4
)

// slab hands out pieces of larger chunks for the payloads of gRPC and
// Connect streams, which free a message's buffer once it is decoded. A
// chunk is never reused: the garbage collector frees it once no message or
// string points into it, so a string a handler keeps stays valid. A slab
// holds no chunk before its first event. Not safe for concurrent use: one
// stream's reader owns it.
type slab struct {
	free []byte // the unused end of the current chunk
	next int    // size of the next chunk
	max  int    // largest chunk, if less than slabChunkSize
}

// limit is the largest chunk.
func (s *slab) limit() int {
	if s.max > 0 {
		return s.max
	}
	return slabChunkSize
}

// alloc returns n bytes for the caller to fill, capped at n so that
// appending to them cannot reach the next piece.
func (s *slab) alloc(n int) []byte {
	if n > s.limit()/4 {
		return make([]byte, n)
	}
	if len(s.free) < n {
		size := min(max(s.next, n), s.limit())
		s.free = make([]byte, size)
		s.next = 2 * size
	}
	b := s.free[:n:n]
	s.free = s.free[n:]
	return b
}

// copy returns a copy of p that lives in the slab.
func (s *slab) copy(p []byte) []byte {
	if len(p) > s.limit()/4 {
		return bytes.Clone(p) // not zeroed first
	}
	b := s.alloc(len(p))
	copy(b, p)
	return b
}

// Field numbers of the ProxyToAgent oneof cases kept in shape; a test checks
// them against the schema.
const (
	fieldRequestHeaders    protowire.Number = 2
	fieldRequestBodyChunk  protowire.Number = 3
	fieldResponseHeaders   protowire.Number = 4
	fieldResponseBodyChunk protowire.Number = 5
	fieldWebsocketFrame    protowire.Number = 6
	fieldRequestComplete   protowire.Number = 8
	// fieldMetadata is RequestHeadersEvent.metadata.
	fieldMetadata protowire.Number = 1
)

// maxKeptHeaders bounds the header structs an envelope keeps for reuse, so
// that one huge request does not leave its headers in the pool for good.
const maxKeptHeaders = 128

// oneofField tells, by field number, which ProxyToAgent fields belong to
// the message oneof.
var oneofField = func() []bool {
	fields := (*agentv2.ProxyToAgent)(nil).ProtoReflect().Descriptor().Oneofs().ByName("message").Fields()
	var top protoreflect.FieldNumber
	for i := range fields.Len() {
		top = max(top, fields.Get(i).Number())
	}
	is := make([]bool, top+1)
	for i := range fields.Len() {
		is[fields.Get(i).Number()] = true
	}
	return is
}()

func isOneofField(n protowire.Number) bool { return n > 0 && int(n) < len(oneofField) && oneofField[n] }

// shapes keeps cleared envelopes of the hot event kinds, indexed by oneof
// field number: each has its oneof wrapper and event in place. metadataPool
// keeps cleared request metadata apart, because an envelope may only carry
// metadata when the event on the wire has some.
var (
	shapes       [fieldRequestComplete + 1]sync.Pool
	metadataPool sync.Pool
)

// scanEnvelope reads the top level of a ProxyToAgent encoding as its
// decoder will: the oneof case the message ends with (0 for none) and, for
// request_headers, whether that event has metadata. ok is false for input
// the scan cannot follow; the decoder may reject it too.
func scanEnvelope(b []byte) (last protowire.Number, meta bool, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false, false
		}
		b = b[n:]
		if typ != protowire.BytesType || !isOneofField(num) {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return 0, false, false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, false, false
		}
		b = b[n:]
		// The decoder merges a case repeated in a row into one message and
		// starts a new one when the case changes.
		if num != last {
			last, meta = num, false
		}
		if num == fieldRequestHeaders && !meta {
			if meta, ok = hasField(v, fieldMetadata); !ok {
				return 0, false, false
			}
		}
	}
	return last, meta, true
}

// hasField reports whether the encoded message b has a length-delimited
// field want.
func hasField(b []byte, want protowire.Number) (has bool, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, false
		}
		if num == want && typ == protowire.BytesType {
			return true, true
		}
		b = b[n:]
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return false, false
		}
		b = b[n:]
	}
	return false, true
}

// isShaped tells whether envelopes of a oneof case are kept in shape.
func isShaped(field protowire.Number) bool {
	switch field {
	case fieldRequestHeaders, fieldRequestBodyChunk, fieldResponseHeaders,
		fieldResponseBodyChunk, fieldWebsocketFrame, fieldRequestComplete:
		return true
	}
	return false
}

// newEnvelope returns an empty envelope to decode into, for an encoding
// whose scan found the oneof case field and, for request headers, meta:
// for a hot event kind a recycled one, already shaped as the decoder would
// build it, so that decoding fills it without allocating.
func newEnvelope(field protowire.Number, meta bool) *agentv2.ProxyToAgent {
	if !isShaped(field) {
		return agentv2.ProxyToAgentFromVTPool()
	}
	m, _ := shapes[field].Get().(*agentv2.ProxyToAgent)
	if m == nil {
		m = makeShape(field)
	}
	return fillShape(m, field, meta)
}

// fillShape completes a cleared envelope of case field for an encoding
// with metadata or not. An envelope carries nothing the wire does not: no
// metadata for request headers without any.
func fillShape(m *agentv2.ProxyToAgent, field protowire.Number, meta bool) *agentv2.ProxyToAgent {
	if field == fieldRequestHeaders && meta {
		md, _ := metadataPool.Get().(*agentv2.RequestMetadata)
		if md == nil {
			md = new(agentv2.RequestMetadata)
		}
		m.Message.(*agentv2.ProxyToAgent_RequestHeaders).RequestHeaders.Metadata = md
	}
	return m
}

// makeShape allocates an empty envelope of a hot event kind: its oneof case
// set to an empty event, as the decoder would set it.
func makeShape(field protowire.Number) *agentv2.ProxyToAgent {
	m := new(agentv2.ProxyToAgent)
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByNumber(field)
	r.Set(fd, r.NewField(fd))
	return m
}

// releaseEnvelope takes back an envelope nobody uses any more: hot event
// kinds are cleared and kept in shape, the others go back to the
// vtprotobuf pools. Safe for concurrent use.
func releaseEnvelope(m *agentv2.ProxyToAgent) {
	if field := clearShape(m); field != 0 {
		shapes[field].Put(m)
		return
	}
	m.ReturnToVTPool()
}

// eventDecoder decodes what a gRPC or Connect stream receives into
// recycled envelopes whose strings and bytes live in its slab. Not safe
// for concurrent use: the stream's reader owns it; the envelopes it returns
// go back through releaseEnvelope from any goroutine.
type eventDecoder struct {
	slab slab
}

// decode decodes src, which the caller may reuse afterwards, into a new
// envelope.
func (d *eventDecoder) decode(src []byte) (*agentv2.ProxyToAgent, error) {
	field, meta, ok := scanEnvelope(src)
	var buf []byte
	if ok && isShaped(field) {
		buf = d.slab.copy(src)
	} else {
		// Handshakes and control messages get their own copy: they are
		// rare, not always released, and a fresh connection should hold
		// no chunk before its first event.
		buf = bytes.Clone(src)
	}
	return decodeShaped(buf, field, meta, ok, 0, false)
}

// decodeFrame decodes a frame's payload, which the caller may reuse
// afterwards, into a new envelope whose oneof case must match the frame
// type t. own is nil, or holds the same bytes as payload in memory the
// message may keep (a chunk nobody reuses): an event then decodes from it
// without another copy.
func decodeFrame(t agentv2.FrameType, payload, own []byte) (*agentv2.ProxyToAgent, error) {
	field, meta, ok := scanEnvelope(payload)
	if own == nil || !ok || !isShaped(field) {
		// Handshakes and control messages get a copy of their own: they
		// are not always released, and must not keep a chunk alive.
		own = bytes.Clone(payload)
	}
	return decodeShaped(own, field, meta, ok, t, true)
}

// decodeLent decodes a frame's payload for a borrowing stream: events of
// the hot kinds alias payload (lent reports so), other messages get a copy
// of their own as in decodeFrame.
func decodeLent(t agentv2.FrameType, payload []byte) (m *agentv2.ProxyToAgent, lent bool, err error) {
	field, meta, ok := scanEnvelope(payload)
	if !ok || !isShaped(field) {
		m, err = decodeShaped(bytes.Clone(payload), field, meta, ok, t, true)
		return m, false, err
	}
	m, err = decodeShaped(payload, field, meta, ok, t, true)
	return m, err == nil, err
}

// decodeShaped decodes buf into an envelope shaped by buf's scan.
func decodeShaped(buf []byte, field protowire.Number, meta, scanned bool, t agentv2.FrameType, framed bool) (*agentv2.ProxyToAgent, error) {
	if !scanned {
		field, meta = 0, false
	}
	return unmarshalEnvelope(newEnvelope(field, meta), buf, t, framed)
}

// unmarshalEnvelope decodes buf into m, which it releases on failure.
func unmarshalEnvelope(m *agentv2.ProxyToAgent, buf []byte, t agentv2.FrameType, framed bool) (*agentv2.ProxyToAgent, error) {
	if x, ok := m.Message.(*agentv2.ProxyToAgent_RequestHeaders); ok && (!framed || t == agentv2.ProxyToAgentFrameRequestHeaders) {
		if decodeRequestHeaders(m, buf) {
			return m, nil
		}
		// Back to the cleared shape for the generated decoder.
		ev := x.RequestHeaders
		md := ev.Metadata
		if md != nil {
			*md = agentv2.RequestMetadata{}
		}
		*ev = agentv2.RequestHeadersEvent{Metadata: md, Headers: clearHeaders(ev.Headers)}
		*m = agentv2.ProxyToAgent{Message: x}
	}
	var err error
	if framed {
		err = m.UnmarshalFrameUnsafe(t, buf)
	} else {
		err = m.UnmarshalVTUnsafe(buf)
	}
	if err != nil {
		releaseEnvelope(m)
		return nil, err
	}
	// A handler appending to a bytes field must not overwrite the rest of
	// the shared payload, which backs the message's strings.
	m.ClipBytes()
	return m, nil
}
