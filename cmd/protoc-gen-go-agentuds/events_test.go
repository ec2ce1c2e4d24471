package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

const (
	eventsName      = "sentinel/agent/v2/agent_events.pb.go"
	eventsGolden    = "testdata/agent_events.golden"
	eventsCommitted = "../../gen/sentinel/agent/v2/agent_events.pb.go"
)

// generateFile runs the plugin in-process on req and returns the content of
// the generated file name, or the generator's error.
func generateFile(t *testing.T, req *pluginpb.CodeGeneratorRequest, name string) (string, error) {
	t.Helper()
	plugin, err := protogen.Options{}.New(req)
	if err != nil {
		t.Fatalf("protogen: %v", err)
	}
	if err := run(plugin); err != nil {
		return "", err
	}
	resp := plugin.Response()
	if resp.Error != nil {
		t.Fatalf("response error: %s", resp.GetError())
	}
	var names []string
	for _, f := range resp.File {
		names = append(names, f.GetName())
		if f.GetName() == name {
			return f.GetContent(), nil
		}
	}
	t.Fatalf("no %s in the response; files: %v", name, names)
	return "", nil
}

func TestEventsGolden(t *testing.T) {
	t.Parallel()
	got, err := generateFile(t, request(t), eventsName)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	if *update {
		if err := os.WriteFile(eventsGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(eventsGolden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update to accept):\n%s", eventsGolden, lineDiff(string(want), got))
	}
	committed, err := os.ReadFile(eventsCommitted)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, committed) {
		t.Errorf("%s differs from %s: regenerate with buf generate, then go test -update:\n%s",
			eventsGolden, eventsCommitted, lineDiff(string(committed), string(want)))
	}
}

// TestEventsKnownExtension: the option read as a registered extension gives
// the same output as read from unknown bytes, as the plugin binary sees it.
func TestEventsKnownExtension(t *testing.T) {
	t.Parallel()
	req := knownRequest()
	if !proto.HasExtension(fieldOptions(t, req, "ProxyToAgent", "configure"), agentv2.E_Event) {
		t.Fatalf("event is not a known extension in the in-process request")
	}
	got, err := generateFile(t, req, eventsName)
	if err != nil {
		t.Fatal(err)
	}
	want, err := generateFile(t, request(t), eventsName)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("known and unknown extension outputs differ:\n%s", lineDiff(want, got))
	}
}

// TestNoEventsNoFile: a schema without event options gets no event file.
func TestNoEventsNoFile(t *testing.T) {
	t.Parallel()
	req := knownRequest()
	for _, f := range []string{"request_headers", "request_body_chunk", "response_headers", "response_body_chunk",
		"websocket_frame", "guardrail", "request_complete", "configure"} {
		proto.ClearExtension(fieldOptions(t, req, "ProxyToAgent", f), agentv2.E_Event)
	}
	plugin, err := protogen.Options{}.New(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(plugin); err != nil {
		t.Fatal(err)
	}
	for _, f := range plugin.Response().File {
		if f.GetName() == eventsName {
			t.Errorf("%s generated without events", eventsName)
		}
	}
}

func TestInvalidEventOptions(t *testing.T) {
	t.Parallel()
	set := func(msg, field string, ev *agentv2.EventOptions) func(t *testing.T, req *pluginpb.CodeGeneratorRequest) {
		return func(t *testing.T, req *pluginpb.CodeGeneratorRequest) {
			proto.SetExtension(fieldOptions(t, req, msg, field), agentv2.E_Event, ev)
		}
	}
	tests := []struct {
		name   string
		mutate func(t *testing.T, req *pluginpb.CodeGeneratorRequest)
		want   []string // substrings of the error
	}{
		{
			name:   "unknown type",
			mutate: set("ProxyToAgent", "guardrail", &agentv2.EventOptions{Type: "EVENT_TYPE_GUARDRAIL", Method: "GuardrailInspect"}),
			want:   []string{"sentinel.agent.v2.ProxyToAgent.guardrail", `"EVENT_TYPE_GUARDRAIL"`},
		},
		{
			name:   "type of another enum",
			mutate: set("ProxyToAgent", "guardrail", &agentv2.EventOptions{Type: "LOG_LEVEL_INFO", Method: "GuardrailInspect"}),
			want:   []string{"sentinel.agent.v2.ProxyToAgent", "LOG_LEVEL_INFO", "one enum"},
		},
		{
			name:   "zero type",
			mutate: set("ProxyToAgent", "guardrail", &agentv2.EventOptions{Type: "EVENT_TYPE_UNSPECIFIED", Method: "GuardrailInspect"}),
			want:   []string{"sentinel.agent.v2.ProxyToAgent.guardrail", "zero value"},
		},
		{
			name:   "duplicate type",
			mutate: set("ProxyToAgent", "guardrail", &agentv2.EventOptions{Type: "EVENT_TYPE_REQUEST_HEADERS", Method: "GuardrailInspect"}),
			want:   []string{"sentinel.agent.v2.ProxyToAgent.guardrail", "duplicate event type", "request_headers"},
		},
		{
			name:   "duplicate method",
			mutate: set("ProxyToAgent", "guardrail", &agentv2.EventOptions{Type: "EVENT_TYPE_GUARDRAIL_INSPECT", Method: "RequestHeaders"}),
			want:   []string{"sentinel.agent.v2.ProxyToAgent.guardrail", "duplicate event method RequestHeaders"},
		},
		{
			name:   "unexported method",
			mutate: set("ProxyToAgent", "guardrail", &agentv2.EventOptions{Type: "EVENT_TYPE_GUARDRAIL_INSPECT", Method: "guardrail"}),
			want:   []string{"sentinel.agent.v2.ProxyToAgent.guardrail", `"guardrail"`, "exported"},
		},
		{
			name: "correlation id not a field",
			mutate: set("ProxyToAgent", "request_headers", &agentv2.EventOptions{
				Type: "EVENT_TYPE_REQUEST_HEADERS", Method: "RequestHeaders", CorrelationId: "correlation_id",
			}),
			want: []string{"sentinel.agent.v2.ProxyToAgent.request_headers", "RequestHeadersEvent has no field correlation_id"},
		},
		{
			name: "correlation id not a string",
			mutate: set("ProxyToAgent", "request_complete", &agentv2.EventOptions{
				Type: "EVENT_TYPE_REQUEST_COMPLETE", Method: "RequestComplete", CorrelationId: "status_code",
			}),
			want: []string{"sentinel.agent.v2.ProxyToAgent.request_complete", "status_code", "not a string"},
		},
		{
			name: "correlation id through a list",
			mutate: set("ProxyToAgent", "response_headers", &agentv2.EventOptions{
				Type: "EVENT_TYPE_RESPONSE_HEADERS", Method: "ResponseHeaders", CorrelationId: "headers.name",
			}),
			want: []string{"sentinel.agent.v2.ProxyToAgent.response_headers", "headers is repeated"},
		},
		{
			name:   "not a oneof case",
			mutate: set("AgentResponse", "correlation_id", &agentv2.EventOptions{Type: "EVENT_TYPE_CONFIGURE", Method: "Configure"}),
			want:   []string{"sentinel.agent.v2.AgentResponse.correlation_id", "oneof"},
		},
		{
			name:   "second envelope",
			mutate: set("ProxyControl", "configure", &agentv2.EventOptions{Type: "EVENT_TYPE_CONFIGURE", Method: "Configure"}),
			want:   []string{"sentinel.agent.v2.ProxyControl.configure", "one event envelope"},
		},
		{
			name: "malformed option bytes",
			mutate: func(t *testing.T, req *pluginpb.CodeGeneratorRequest) {
				opts := fieldOptions(t, req, "ProxyToAgent", "configure")
				proto.ClearExtension(opts, agentv2.E_Event)
				tag := protowire.AppendTag(nil, agentv2.E_Event.TypeDescriptor().Number(), protowire.BytesType)
				opts.ProtoReflect().SetUnknown(append(tag, 9, 1)) // 9 bytes promised, 1 there
			},
			want: []string{"sentinel.agent.v2.ProxyToAgent.configure", "malformed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := knownRequest()
			tt.mutate(t, req)
			src, err := generateFile(t, req, eventsName)
			if err == nil {
				t.Fatalf("generation succeeded, want an error; output has %d bytes", len(src))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestNoReplyMessage: events need the AgentResponse their handlers return.
func TestNoReplyMessage(t *testing.T) {
	t.Parallel()
	req := knownRequest()
	for _, f := range req.ProtoFile {
		if f.GetName() != agentProto {
			continue
		}
		for _, m := range f.MessageType {
			if m.GetName() == "AgentResponse" {
				m.Name = proto.String("Decision")
				fixTypeNames(f, ".sentinel.agent.v2.AgentResponse", ".sentinel.agent.v2.Decision")
			}
		}
	}
	_, err := generateFile(t, req, eventsName)
	if err == nil || !strings.Contains(err.Error(), "AgentResponse") {
		t.Errorf("error %v, want one naming AgentResponse", err)
	}
}

// fixTypeNames renames the references to a message, and to the types
// nested in it (map entries), in f.
func fixTypeNames(f *descriptorpb.FileDescriptorProto, from, to string) {
	var walk func(msgs []*descriptorpb.DescriptorProto)
	walk = func(msgs []*descriptorpb.DescriptorProto) {
		for _, m := range msgs {
			for _, fd := range m.Field {
				if n := fd.GetTypeName(); n == from || strings.HasPrefix(n, from+".") {
					fd.TypeName = proto.String(to + strings.TrimPrefix(n, from))
				}
			}
			walk(m.NestedType)
		}
	}
	walk(f.MessageType)
	for _, s := range f.Service {
		for _, m := range s.Method {
			if m.GetInputType() == from {
				m.InputType = proto.String(to)
			}
			if m.GetOutputType() == from {
				m.OutputType = proto.String(to)
			}
		}
	}
}
