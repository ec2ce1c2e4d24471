package agent

import (
	"reflect"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Field numbers of the ProxyToAgent cases shapeClearer keeps in shape, and
// of RequestHeadersEvent.metadata; a test checks them against the schema.
const (
	fieldRequestHeaders    protowire.Number = 2
	fieldRequestBodyChunk  protowire.Number = 3
	fieldResponseHeaders   protowire.Number = 4
	fieldResponseBodyChunk protowire.Number = 5
	fieldWebsocketFrame    protowire.Number = 6
	fieldRequestComplete   protowire.Number = 8
	fieldMetadata          protowire.Number = 1
)

// maxKeptHeaders bounds the header structs an envelope keeps for reuse, so
// that one huge request does not leave its headers in the pool for good.
const maxKeptHeaders = 128

// shaped tells, by oneof field number, which cases shapeClearer keeps.
var shaped = func() (is [fieldRequestComplete + 1]bool) {
	for f := range is {
		n := protowire.Number(f)
		is[f] = isOneofField(n) && clearShape(makeShape(n)) == n
	}
	return is
}()

// isShaped tells whether envelopes of a oneof case are kept in shape.
func isShaped(field protowire.Number) bool {
	return field > 0 && int(field) < len(shaped) && shaped[field]
}

// clearShape clears an envelope of a hot event kind by assignment, keeping
// its oneof wrapper, event and header structs, and returns its case; other
// envelopes it leaves alone and returns 0. Metadata goes to metadataPool.
func clearShape(m *agentv2.ProxyToAgent) protowire.Number {
	field, _ := agentv2.VisitEvent(shapeClearer{}, m)
	if field != 0 {
		*m = agentv2.ProxyToAgent{Message: m.Message}
	}
	return field
}

// shapeClearer clears the event of a hot kind and returns its oneof case;
// the other kinds fall to the generated base, which returns 0.
type shapeClearer struct {
	agentv2.UnimplementedEventVisitor[protowire.Number]
}

// clearEvent zeroes a non-nil event and returns field, else 0.
func clearEvent[T any](ev *T, field protowire.Number) protowire.Number {
	if ev == nil {
		return 0
	}
	var zero T
	*ev = zero
	return field
}

func (shapeClearer) VisitRequestHeaders(_ *agentv2.ProxyToAgent, ev *agentv2.RequestHeadersEvent) protowire.Number {
	if ev == nil {
		return 0
	}
	if md := ev.Metadata; md != nil {
		*md = agentv2.RequestMetadata{}
		metadataPool.Put(md)
	}
	*ev = agentv2.RequestHeadersEvent{Headers: resetHeaders(ev.Headers, true)}
	return fieldRequestHeaders
}

func (shapeClearer) VisitResponseHeaders(_ *agentv2.ProxyToAgent, ev *agentv2.ResponseHeadersEvent) protowire.Number {
	if ev == nil {
		return 0
	}
	*ev = agentv2.ResponseHeadersEvent{Headers: resetHeaders(ev.Headers, false)}
	return fieldResponseHeaders
}

func (shapeClearer) VisitRequestBodyChunk(_ *agentv2.ProxyToAgent, ev *agentv2.BodyChunkEvent) protowire.Number {
	return clearEvent(ev, fieldRequestBodyChunk)
}

func (shapeClearer) VisitResponseBodyChunk(_ *agentv2.ProxyToAgent, ev *agentv2.BodyChunkEvent) protowire.Number {
	return clearEvent(ev, fieldResponseBodyChunk)
}

func (shapeClearer) VisitWebsocketFrame(_ *agentv2.ProxyToAgent, ev *agentv2.WebSocketFrameEvent) protowire.Number {
	return clearEvent(ev, fieldWebsocketFrame)
}

func (shapeClearer) VisitRequestComplete(_ *agentv2.ProxyToAgent, ev *agentv2.RequestCompleteEvent) protowire.Number {
	return clearEvent(ev, fieldRequestComplete)
}

// resetHeaders clears the header structs of hs up to its capacity (a
// handler may have shortened it) and returns hs emptied, or nil if too
// large to keep: decoders reuse structs past the length without clearing
// them. direct (request headers): the direct decoder sets every field it
// reuses, so only structs with unknown fields, which it never leaves, are
// cleared; sparing the others a pointer write each matters while the
// garbage collector marks.
func resetHeaders(hs []*agentv2.Header, direct bool) []*agentv2.Header {
	if cap(hs) > maxKeptHeaders {
		return nil
	}
	hs = hs[:cap(hs)]
	for _, h := range hs {
		if h != nil && (!direct || hasUnknownFields(h)) {
			*h = agentv2.Header{}
		}
	}
	return hs[:0]
}

// headerUnknown is the offset of Header's unknown fields, or -1 if it has
// no such field of the expected type (every header then counts as having
// some).
var headerUnknown = func() int {
	f, ok := reflect.TypeFor[agentv2.Header]().FieldByName("unknownFields")
	if !ok || f.Type != reflect.TypeFor[[]byte]() {
		return -1
	}
	return int(f.Offset)
}()

// hasUnknownFields reports whether h holds unknown fields, without the
// reflection API (which would cost more than clearing h).
func hasUnknownFields(h *agentv2.Header) bool {
	if headerUnknown < 0 {
		return true
	}
	return len(*(*[]byte)(unsafe.Add(unsafe.Pointer(h), headerUnknown))) > 0
}
