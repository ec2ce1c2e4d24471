package agentwire_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func TestCodeNamesRoundTrip(t *testing.T) {
	t.Parallel()
	for c := agentwire.CodeCanceled; c <= agentwire.CodeUnauthenticated; c++ {
		text, _ := c.MarshalText()
		var back agentwire.Code
		if err := back.UnmarshalText(text); err != nil || back != c {
			t.Errorf("%d: %q -> %v, %v", c, text, back, err)
		}
	}
	var c agentwire.Code
	if err := c.UnmarshalText([]byte("code_99")); err != nil || c != 99 {
		t.Errorf("code_99 -> %v, %v", c, err)
	}
	if err := c.UnmarshalText([]byte("nonsense")); err == nil {
		t.Error("nonsense parsed")
	}
}

func TestWrapContextError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   error
		want agentwire.Code
	}{
		{context.Canceled, agentwire.CodeCanceled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), agentwire.CodeDeadlineExceeded},
		{io.EOF, agentwire.CodeUnknown},
	} {
		got := agentwire.WrapContextError(tc.in)
		if agentwire.CodeOf(got) != tc.want {
			t.Errorf("%v: code %v, want %v", tc.in, agentwire.CodeOf(got), tc.want)
		}
		if !errors.Is(got, tc.in) {
			t.Errorf("%v: lost the original error", tc.in)
		}
	}
	if agentwire.WrapContextError(nil) != nil {
		t.Error("nil wrapped")
	}
	// An *Error keeps its own code even when it wraps a context error.
	e := agentwire.NewError(agentwire.CodeUnavailable, context.Canceled)
	if agentwire.CodeOf(agentwire.WrapContextError(e)) != agentwire.CodeUnavailable {
		t.Error("*Error code replaced")
	}
}

func TestWireErrors(t *testing.T) {
	t.Parallel()
	w := agentwire.NewWireError(0, "boom")
	if w.Code() != agentwire.CodeUnknown || !agentwire.IsWireError(fmt.Errorf("wrapped: %w", w)) {
		t.Errorf("wire error: %v", w)
	}
	if agentwire.IsWireError(agentwire.Errorf(agentwire.CodeUnavailable, "local")) {
		t.Error("local error reported as wire error")
	}
	if got := w.Error(); got != "unknown: boom" {
		t.Errorf("Error() = %q", got)
	}
}

func TestCorrelationIDOfEveryEvent(t *testing.T) {
	t.Parallel()
	// Every event case carries its request's correlation id (configure has
	// none); control messages are not events.
	for _, info := range agentv2.ProxyToAgentFrames {
		m := &agentv2.ProxyToAgent{}
		fd := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(info.Field))
		inner := m.ProtoReflect().NewField(fd).Message()
		if f := inner.Descriptor().Fields().ByName("correlation_id"); f != nil {
			inner.Set(f, protoreflect.ValueOfString("c-"+info.Field))
		}
		if f := inner.Descriptor().Fields().ByName("metadata"); f != nil {
			md := inner.NewField(f).Message()
			md.Set(md.Descriptor().Fields().ByName("correlation_id"), protoreflect.ValueOfString("c-"+info.Field))
			inner.Set(f, protoreflect.ValueOfMessage(md))
		}
		m.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(inner))
		cid, ok := m.EventCorrelationID()
		isEvent := m.EventType() != agentv2.EventType_EVENT_TYPE_UNSPECIFIED
		if ok != isEvent {
			t.Errorf("%s: EventCorrelationID says event=%v, EventType says %v", info.Field, ok, isEvent)
		}
		switch {
		case !ok:
		case info.Field == "configure":
			if cid != "" {
				t.Errorf("configure: correlation id %q", cid)
			}
		case cid != "c-"+info.Field:
			t.Errorf("%s: correlation id %q", info.Field, cid)
		}
	}
	if _, ok := (&agentv2.ProxyToAgent{}).EventCorrelationID(); ok {
		t.Error("an empty envelope is an event")
	}
}
