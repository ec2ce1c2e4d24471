package transport

import (
	"unsafe"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Decisions are the proxy's hottest input, and each is decoded into memory
// its caller then owns, so it cannot be recycled. The generated decoder
// allocates every message, oneof wrapper and slice on its own: nine
// allocations for an allow with one header mutation, counting the copy of
// the payload its strings alias. decodeResponse decodes the common shapes
// of response envelopes (allow or no decision, header mutations,
// processing time, needs_more) into one respArena instead, and declines
// everything else (other decisions, audit metadata, errors, unknown or
// repeated envelope fields, malformed input), which then takes the
// generated decoder. What it decodes equals the generated decoder's result
// (response_test.go checks it on random and fuzzed input).

// arenaBytes is how many envelope bytes a respArena holds inline.
const arenaBytes = 64

// respArena is one decoded response and everything it points to, with
// room for one header mutation in each list; further ones are allocated.
// It stays within 512 bytes, the largest size class without a malloc
// header.
type respArena struct {
	wrap  agentv2.AgentToProxy_Response
	resp  agentv2.AgentResponse
	allow agentv2.AgentResponse_Allow
	dec   agentv2.AllowDecision
	ptime uint64
	req   [1]*agentv2.HeaderOp
	res   [1]*agentv2.HeaderOp
	op    opBlock
	// buf holds the envelope the strings alias, when it fits. It comes
	// last: the collector scans an object only up to its last pointer.
	buf [arenaBytes]byte
}

// opBlock is one header mutation, with room for any kind of operation.
type opBlock struct {
	op  agentv2.HeaderOp
	hdr agentv2.Header
	set agentv2.HeaderOp_Set
	add agentv2.HeaderOp_Add
	rem agentv2.HeaderOp_Remove
	// used: the arena's own block holds a mutation already.
	used bool
}

// Wire types and field numbers the fast path knows.
const (
	wireVarint = 0
	wireBytes  = 2

	fieldEnvelopeResponse = 2
	fieldEnvelopeEventID  = 100

	fieldRespCorrelationID = 1
	fieldRespAllow         = 2
	fieldRespRequestOps    = 10
	fieldRespResponseOps   = 11
	fieldRespProcessingMs  = 13
	fieldRespNeedsMore     = 14

	fieldOpSet    = 1
	fieldOpAdd    = 2
	fieldOpRemove = 3

	fieldHeaderName  = 1
	fieldHeaderValue = 2

	maxFieldNumber = 1<<29 - 1
)

// decodeResponse decodes src, an AgentToProxy envelope, into m if it is a
// response of a shape the fast path handles, and reports whether it did;
// m is untouched when it did not. src is copied: the caller may reuse it.
func decodeResponse(m *agentv2.AgentToProxy, src []byte) bool {
	id, start, end, ok := scanEnvelope(src)
	if !ok {
		return false
	}
	a := new(respArena)
	var own []byte
	if len(src) <= arenaBytes {
		own = a.buf[:len(src)]
	} else {
		own = make([]byte, len(src))
	}
	copy(own, src)
	if !a.response(own[start:end]) {
		return false
	}
	*m = agentv2.AgentToProxy{EventId: id, Message: &a.wrap}
	a.wrap.Response = &a.resp
	return true
}

// scanEnvelope finds the event id and the response's bytes src[start:end]
// in an envelope that has exactly one response field and nothing else but
// event ids.
func scanEnvelope(src []byte) (id uint64, start, end int, ok bool) {
	start = -1
	for i := 0; i < len(src); {
		field, wt, n := tag(src[i:])
		if n <= 0 {
			return 0, 0, 0, false
		}
		i += n
		switch {
		case field == fieldEnvelopeEventID && wt == wireVarint:
			v, n := varint(src[i:])
			if n <= 0 {
				return 0, 0, 0, false
			}
			id, i = v, i+n
		case field == fieldEnvelopeResponse && wt == wireBytes && start < 0:
			l, n := length(src[i:])
			if n <= 0 {
				return 0, 0, 0, false
			}
			start, end = i+n, i+n+l
			i = end
		default:
			return 0, 0, 0, false
		}
	}
	return id, start, end, start >= 0
}

// response decodes an AgentResponse into a.resp; false means the fast
// path declines.
func (a *respArena) response(b []byte) bool {
	r := &a.resp
	for i := 0; i < len(b); {
		field, wt, n := tag(b[i:])
		if n <= 0 {
			return false
		}
		i += n
		if wt == wireVarint {
			v, n := varint(b[i:])
			if n <= 0 {
				return false
			}
			i += n
			switch field {
			case fieldRespProcessingMs:
				a.ptime = v
				r.ProcessingTimeMs = &a.ptime
			case fieldRespNeedsMore:
				r.NeedsMore = v != 0
			default:
				return false
			}
			continue
		}
		if wt != wireBytes {
			return false
		}
		v, next := lengthDelimited(b, i)
		if next < 0 {
			return false
		}
		i = next
		switch field {
		case fieldRespCorrelationID:
			r.CorrelationId = aliasString(v)
		case fieldRespAllow:
			if len(v) != 0 {
				return false // unknown fields in AllowDecision
			}
			a.allow.Allow = &a.dec
			r.Decision = &a.allow
		case fieldRespRequestOps, fieldRespResponseOps:
			blk := &a.op
			if a.op.used {
				blk = new(opBlock)
			}
			blk.used = true
			if !headerOp(v, blk) {
				return false
			}
			if field == fieldRespRequestOps {
				if r.RequestHeaders == nil {
					r.RequestHeaders = a.req[:0]
				}
				r.RequestHeaders = append(r.RequestHeaders, &blk.op)
			} else {
				if r.ResponseHeaders == nil {
					r.ResponseHeaders = a.res[:0]
				}
				r.ResponseHeaders = append(r.ResponseHeaders, &blk.op)
			}
		default:
			return false
		}
	}
	return true
}

// headerOp decodes a HeaderOp with at most one operation into blk.
func headerOp(b []byte, blk *opBlock) bool {
	seen := false
	for i := 0; i < len(b); {
		field, wt, n := tag(b[i:])
		if n <= 0 || wt != wireBytes || seen {
			return false
		}
		i += n
		v, next := lengthDelimited(b, i)
		if next < 0 {
			return false
		}
		i = next
		seen = true
		switch field {
		case fieldOpSet:
			blk.set.Set = &blk.hdr
			blk.op.Operation = &blk.set
			if !header(v, &blk.hdr) {
				return false
			}
		case fieldOpAdd:
			blk.add.Add = &blk.hdr
			blk.op.Operation = &blk.add
			if !header(v, &blk.hdr) {
				return false
			}
		case fieldOpRemove:
			blk.rem.Remove = aliasString(v)
			blk.op.Operation = &blk.rem
		default:
			return false
		}
	}
	return true
}

// header decodes a Header into h.
func header(b []byte, h *agentv2.Header) bool {
	for i := 0; i < len(b); {
		field, wt, n := tag(b[i:])
		if n <= 0 || wt != wireBytes {
			return false
		}
		i += n
		v, next := lengthDelimited(b, i)
		if next < 0 {
			return false
		}
		i = next
		switch field {
		case fieldHeaderName:
			h.Name = aliasString(v)
		case fieldHeaderValue:
			h.Value = aliasString(v)
		default:
			return false
		}
	}
	return true
}

// aliasString returns b as a string without copying; b must never change.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// varint decodes a base-128 varint at the start of b and returns it with
// its length, or n <= 0 if b does not start with a valid one.
func varint(b []byte) (v uint64, n int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	for shift := uint(0); shift < 64; shift += 7 {
		if n >= len(b) {
			return 0, 0
		}
		c := b[n]
		n++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, n
		}
	}
	return 0, 0
}

// tag decodes a field tag, declining field numbers out of range.
func tag(b []byte) (field uint64, wt int, n int) {
	v, n := varint(b)
	if n <= 0 {
		return 0, 0, 0
	}
	field = v >> 3
	if field == 0 || field > maxFieldNumber {
		return 0, 0, 0
	}
	return field, int(v & 7), n
}

// length decodes the length of a length-delimited field and checks that
// the field fits in b.
// lengthDelimited returns the bytes field starting at b[i] (its length
// prefix first) and where the next field starts, or next < 0 if malformed.
func lengthDelimited(b []byte, i int) (v []byte, next int) {
	l, n := length(b[i:])
	if n <= 0 {
		return nil, -1
	}
	return b[i+n : i+n+l], i + n + l
}

func length(b []byte) (l int, n int) {
	v, n := varint(b)
	if n <= 0 || v > uint64(len(b)-n) {
		return 0, 0
	}
	return int(v), n
}
