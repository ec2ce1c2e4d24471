package agent

import (
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Request headers are most of what an agent decodes, and most of their
// bytes are header names and values. decodeRequestHeaders reads the common
// encoding of such an envelope directly: one-byte tags, the fields the
// schema has, and nothing else. For anything else (unknown fields, other
// oneof cases, wrong wire types, a malformed length) it gives up, and the
// generated decoder, which keeps unknown fields and reports errors, decodes
// the envelope from the start. Either way the result is the same message;
// TestRecycledDecodeMatchesFreshDecode and FuzzDecodeRequestHeaders compare
// the two.

// Tags of the fields decodeRequestHeaders reads: (field << 3) | wire type.
const (
	tagEnvRequestHeaders = byte(fieldRequestHeaders)<<3 | byte(protowire.BytesType) // ProxyToAgent.request_headers
	tagEnvEventID0       = byte(0xa0)                                               // ProxyToAgent.event_id (100, varint): 0xa0 0x06
	tagEnvEventID1       = byte(0x06)
	tagRHMetadata        = 1<<3 | byte(protowire.BytesType)
	tagRHMethod          = 2<<3 | byte(protowire.BytesType)
	tagRHURI             = 3<<3 | byte(protowire.BytesType)
	tagRHVersion         = 4<<3 | byte(protowire.BytesType)
	tagRHHeader          = 5<<3 | byte(protowire.BytesType)
	tagHeaderName        = 1<<3 | byte(protowire.BytesType)
	tagHeaderValue       = 2<<3 | byte(protowire.BytesType)
)

// decodeRequestHeaders decodes buf, a ProxyToAgent encoding, into m, a
// cleared request-headers envelope shaped for it (see fillShape), with
// strings aliasing buf. It reports false when it gave up; m then holds a
// partial decode, which the caller clears.
func decodeRequestHeaders(m *agentv2.ProxyToAgent, ev *agentv2.RequestHeadersEvent, buf []byte) bool {
	for i := 0; i < len(buf); {
		switch buf[i] {
		case tagEnvRequestHeaders:
			v, next, ok := lengthPrefixed(buf, i+1)
			if !ok || !decodeRequestHeadersEvent(ev, v) {
				return false
			}
			i = next
		case tagEnvEventID0:
			if i+1 >= len(buf) || buf[i+1] != tagEnvEventID1 {
				return false
			}
			id, n := protowire.ConsumeVarint(buf[i+2:])
			if n < 0 {
				return false
			}
			m.EventId = id
			i += 2 + n
		default:
			return false
		}
	}
	return true
}

// decodeRequestHeadersEvent decodes one occurrence of the event's encoding
// into ev, merging as the generated decoder does: later scalars win,
// headers append, metadata merges.
func decodeRequestHeadersEvent(ev *agentv2.RequestHeadersEvent, b []byte) bool {
	for i := 0; i < len(b); {
		tag, v, next, ok := nextField(b, i)
		if !ok {
			return false
		}
		switch tag {
		case tagRHHeader:
			hs := ev.Headers
			var h *agentv2.Header
			if n := len(hs); n < cap(hs) {
				hs = hs[:n+1]
				if h = hs[n]; h == nil {
					h = new(agentv2.Header)
					hs[n] = h
				}
			} else {
				h = new(agentv2.Header)
				hs = append(hs, h)
			}
			ev.Headers = hs
			if !decodeHeader(h, v) {
				return false
			}
		case tagRHMetadata:
			if ev.Metadata == nil {
				ev.Metadata = new(agentv2.RequestMetadata)
			}
			if ev.Metadata.UnmarshalVTUnsafe(v) != nil {
				return false
			}
		case tagRHMethod:
			ev.Method = aliasString(v)
		case tagRHURI:
			ev.Uri = aliasString(v)
		case tagRHVersion:
			ev.HttpVersion = aliasString(v)
		default:
			return false
		}
		i = next
	}
	return true
}

// decodeHeader decodes a Header encoding into h, a struct with no unknown
// fields whose name and value it sets (see keepHeaders).
func decodeHeader(h *agentv2.Header, b []byte) bool {
	// The encoding proxies send: name then value, each shorter than 128
	// bytes, so each length is one byte.
	if len(b) >= 4 && b[0] == tagHeaderName && b[1] < 0x80 {
		n := int(b[1]) + 2
		if n+2 <= len(b) && b[n] == tagHeaderValue && b[n+1] < 0x80 && n+2+int(b[n+1]) == len(b) {
			h.Name, h.Value = aliasString(b[2:n]), aliasString(b[n+2:])
			return true
		}
	}
	h.Name, h.Value = "", ""
	for i := 0; i < len(b); {
		tag, v, next, ok := nextField(b, i)
		if !ok {
			return false
		}
		switch tag {
		case tagHeaderName:
			h.Name = aliasString(v)
		case tagHeaderValue:
			h.Value = aliasString(v)
		default:
			return false
		}
		i = next
	}
	return true
}

// nextField reads the field starting at b[i] as a one-byte tag and a
// length-prefixed value (the only kind the direct path takes; the caller
// checks the tag) and returns the index after it.
func nextField(b []byte, i int) (tag byte, v []byte, next int, ok bool) {
	v, next, ok = lengthPrefixed(b, i+1)
	return b[i], v, next, ok
}

// lengthPrefixed reads the length-prefixed value starting at b[i]: the
// value (capacity clipped) and the index after it.
func lengthPrefixed(b []byte, i int) (v []byte, next int, ok bool) {
	if i >= len(b) {
		return nil, 0, false
	}
	n := int(b[i])
	i++
	if n >= 0x80 {
		x, k := protowire.ConsumeVarint(b[i-1:])
		if k < 0 || x > uint64(len(b)) {
			return nil, 0, false
		}
		n, i = int(x), i-1+k
	}
	if n > len(b)-i {
		return nil, 0, false
	}
	return b[i : i+n : i+n], i + n, true
}

// aliasString returns b as a string without copying, as the generated
// unsafe decoder does: the empty string for no bytes.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
