package agent

import (
	"bytes"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Decoding events is the agent's hottest path. Payloads live in chunks
// that many events share and nothing reuses (teeReader's copy of each read,
// or a slab), which the decoded strings and bytes alias; answered envelopes
// of the hot event kinds are cleared by assignment (clearshape.go) and kept
// with their structs, so the next event of the kind decodes without
// allocating.

// Slab chunks double from the first payload's size up to slabChunkSize (or
// a slab's max); a payload over a quarter of that gets its own allocation.
const (
	slabChunkSize = 16 << 10
	slabMaxPiece  = slabChunkSize / 4
)

// slab hands out pieces of chunks for the payloads of gRPC and Connect
// streams. A chunk is never reused: the garbage collector frees it once
// nothing points into it, so strings a handler keeps stay valid. Not safe
// for concurrent use: one stream's reader owns it.
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

// scanEnvelope reads the top level of a ProxyToAgent encoding as its
// decoder will: the oneof case it ends with (0 for none) and, for
// request_headers, whether the event has metadata. ok is false for input
// the scan cannot follow.
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
		// The decoder merges a case repeated in a row and starts anew when
		// the case changes.
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

// shapes keeps cleared envelopes of the hot event kinds by oneof field
// number; metadataPool keeps request metadata apart, attached only when the
// event on the wire has some.
var (
	shapes       [len(shaped)]sync.Pool
	metadataPool sync.Pool
)

// newEnvelope returns an empty envelope to decode an encoding into whose
// scan found oneof case field and, for request headers, meta: for a hot
// event kind a recycled one, already shaped as the decoder would build it.
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

// fillShape completes a cleared envelope of case field: request headers
// get metadata only if the encoding has some.
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

// makeShape allocates an empty envelope with oneof case field set to an
// empty message, as the decoder would set it.
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
// recycled envelopes whose strings and bytes live in its slab. Only the
// stream's reader uses it; its envelopes are released from any goroutine.
type eventDecoder struct {
	slab slab
}

// decode decodes src, which the caller may reuse afterwards.
func (d *eventDecoder) decode(src []byte) (*agentv2.ProxyToAgent, error) {
	m, _, err := decodeEnvelope(src, 0, false, d.slab.copy)
	return m, err
}

// decodeFrame decodes a frame's payload, which the caller may reuse, into
// an envelope whose case must match frame type t. own is nil or holds the
// same bytes in memory the message may keep: events then decode from it.
func decodeFrame(t agentv2.FrameType, payload, own []byte) (*agentv2.ProxyToAgent, error) {
	m, _, err := decodeEnvelope(payload, t, true, func([]byte) []byte { return own })
	return m, err
}

// decodeLent decodes a frame's payload for a borrowing stream: hot events
// alias payload (lent), other messages get a copy as in decodeFrame.
func decodeLent(t agentv2.FrameType, payload []byte) (m *agentv2.ProxyToAgent, lent bool, err error) {
	return decodeEnvelope(payload, t, true, func(p []byte) []byte { return p })
}

// decodeEnvelope decodes payload into a new envelope, from own(payload)
// (nil: a copy) for the hot event kinds (kept reports so) and from a copy
// otherwise: control messages are rare, not always released, and must not
// keep a chunk alive.
func decodeEnvelope(payload []byte, t agentv2.FrameType, framed bool, own func([]byte) []byte) (m *agentv2.ProxyToAgent, kept bool, err error) {
	field, meta, ok := scanEnvelope(payload)
	if !ok {
		field, meta = 0, false
	}
	var buf []byte
	if isShaped(field) {
		buf = own(payload)
	}
	kept = buf != nil
	if !kept {
		buf = bytes.Clone(payload)
	}
	m, err = unmarshalEnvelope(newEnvelope(field, meta), buf, t, framed)
	return m, kept && err == nil, err
}

// unmarshalEnvelope decodes buf into m, which it releases on failure.
// Request headers take the generated direct decoder first; for what it
// declines, the generated decoder starts again from the cleared shape.
func unmarshalEnvelope(m *agentv2.ProxyToAgent, buf []byte, t agentv2.FrameType, framed bool) (*agentv2.ProxyToAgent, error) {
	if x, ok := m.Message.(*agentv2.ProxyToAgent_RequestHeaders); ok && (!framed || t == agentv2.ProxyToAgentFrameRequestHeaders) {
		if m.UnmarshalRequestHeadersDirectUnsafe(buf) {
			return m, nil
		}
		ev := x.RequestHeaders
		md := ev.Metadata
		if md != nil {
			*md = agentv2.RequestMetadata{}
		}
		*ev = agentv2.RequestHeadersEvent{Metadata: md, Headers: resetHeaders(ev.Headers, false)}
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
	// Appending to a bytes field must not overwrite the shared payload.
	m.ClipBytes()
	return m, nil
}
