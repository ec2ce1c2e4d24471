package agent

import (
	"reflect"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// clearShape clears an envelope of a hot event kind by assignment, which
// drops every reference into the slab, keeping its oneof wrapper, event and
// header structs; it returns the oneof case, or 0 (and leaves m alone) for
// other envelopes. Request metadata goes to metadataPool.
func clearShape(m *agentv2.ProxyToAgent) protowire.Number {
	field, _ := agentv2.VisitEvent(shapeClearer{}, m)
	if field != 0 {
		*m = agentv2.ProxyToAgent{Message: m.Message}
	}
	return field
}

// shapeClearer clears the event of a hot kind for clearShape and returns
// its oneof case; the other kinds, from the generated base, return 0.
type shapeClearer struct {
	agentv2.UnimplementedEventVisitor[protowire.Number]
}

func (shapeClearer) VisitRequestHeaders(_ *agentv2.ProxyToAgent, ev *agentv2.RequestHeadersEvent) protowire.Number {
	if ev == nil {
		return 0
	}
	if md := ev.Metadata; md != nil {
		*md = agentv2.RequestMetadata{}
		metadataPool.Put(md)
	}
	*ev = agentv2.RequestHeadersEvent{Headers: keepHeaders(ev.Headers)}
	return fieldRequestHeaders
}

func (shapeClearer) VisitRequestBodyChunk(_ *agentv2.ProxyToAgent, ev *agentv2.BodyChunkEvent) protowire.Number {
	if ev == nil {
		return 0
	}
	*ev = agentv2.BodyChunkEvent{}
	return fieldRequestBodyChunk
}

func (shapeClearer) VisitResponseHeaders(_ *agentv2.ProxyToAgent, ev *agentv2.ResponseHeadersEvent) protowire.Number {
	if ev == nil {
		return 0
	}
	*ev = agentv2.ResponseHeadersEvent{Headers: clearHeaders(ev.Headers)}
	return fieldResponseHeaders
}

func (shapeClearer) VisitResponseBodyChunk(_ *agentv2.ProxyToAgent, ev *agentv2.BodyChunkEvent) protowire.Number {
	if ev == nil {
		return 0
	}
	*ev = agentv2.BodyChunkEvent{}
	return fieldResponseBodyChunk
}

func (shapeClearer) VisitWebsocketFrame(_ *agentv2.ProxyToAgent, ev *agentv2.WebSocketFrameEvent) protowire.Number {
	if ev == nil {
		return 0
	}
	*ev = agentv2.WebSocketFrameEvent{}
	return fieldWebsocketFrame
}

func (shapeClearer) VisitRequestComplete(_ *agentv2.ProxyToAgent, ev *agentv2.RequestCompleteEvent) protowire.Number {
	if ev == nil {
		return 0
	}
	*ev = agentv2.RequestCompleteEvent{}
	return fieldRequestComplete
}

// clearHeaders clears the header structs of hs, up to its capacity (a
// handler may have shortened the slice), and returns hs emptied for reuse,
// or nil if it is too large to keep. The decoder reuses non-nil structs
// past the length, and it does not clear a struct before decoding into it.
func clearHeaders(hs []*agentv2.Header) []*agentv2.Header {
	if cap(hs) > maxKeptHeaders {
		return nil
	}
	hs = hs[:cap(hs)]
	for _, h := range hs {
		if h != nil {
			*h = agentv2.Header{}
		}
	}
	return hs[:0]
}

// keepHeaders is clearHeaders for request headers, which decode on the
// direct path (decodeRequestHeaders): that path sets the name and value of
// every header struct it reuses, so only structs holding unknown fields
// (left by the generated decoder) are cleared. Clearing the others would
// cost a pointer write each, which is dear while the garbage collector
// marks, for nothing.
func keepHeaders(hs []*agentv2.Header) []*agentv2.Header {
	if cap(hs) > maxKeptHeaders {
		return nil
	}
	hs = hs[:cap(hs)]
	for _, h := range hs {
		if h != nil && hasUnknownFields(h) {
			*h = agentv2.Header{}
		}
	}
	return hs[:0]
}

// headerUnknown is the offset of the generated Header's unknown fields, or
// -1 if the struct has no such field of the expected type (every header
// then counts as having some, and is cleared).
var headerUnknown = func() int {
	f, ok := reflect.TypeFor[agentv2.Header]().FieldByName("unknownFields")
	if !ok || f.Type != reflect.TypeFor[[]byte]() {
		return -1
	}
	return int(f.Offset)
}()

// hasUnknownFields reports whether h holds unknown fields, reading them
// without the reflection API (which would cost more than clearing h).
func hasUnknownFields(h *agentv2.Header) bool {
	if headerUnknown < 0 {
		return true
	}
	return len(*(*[]byte)(unsafe.Add(unsafe.Pointer(h), headerUnknown))) > 0
}
