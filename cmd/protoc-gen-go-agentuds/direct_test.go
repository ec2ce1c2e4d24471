package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

const (
	directName      = "sentinel/agent/v2/agent_direct.pb.go"
	directGolden    = "testdata/agent_direct.golden"
	directCommitted = "../../gen/sentinel/agent/v2/agent_direct.pb.go"
)

// directOptions are the plugin's direct= and decoder= options in
// buf.gen.yaml, which the tests' requests carry as buf generate does.
var directOptions = sync.OnceValue(func() []string {
	b, err := os.ReadFile(filepath.Join(repoRoot, "buf.gen.yaml"))
	if err != nil {
		panic(err)
	}
	var opts []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "- direct=") || strings.HasPrefix(l, "- decoder=") {
			opts = append(opts, strings.TrimPrefix(l, "- "))
		}
	}
	return opts
})

func TestDirectGolden(t *testing.T) {
	t.Parallel()
	if len(directOptions()) == 0 {
		t.Fatal("buf.gen.yaml has no direct decoder options")
	}
	checkGolden(t, directName, directGolden, directCommitted)
}

// withParams replaces the direct options of req.
func withParams(req *pluginpb.CodeGeneratorRequest, opts ...string) *pluginpb.CodeGeneratorRequest {
	req.Parameter = proto.String(strings.Join(append([]string{"paths=source_relative"}, opts...), ","))
	return req
}

// TestDirectFieldNumbersFromSchema: the decoders switch on the tags the
// descriptors give, not on numbers the plugin knows.
func TestDirectFieldNumbersFromSchema(t *testing.T) {
	t.Parallel()
	req := knownRequest()
	message(t, req, "AgentResponse", func(m *descriptorpb.DescriptorProto) {
		for _, fd := range m.Field {
			if fd.GetName() == "needs_more" {
				fd.Number = proto.Int32(15)
			}
		}
	})
	src, err := generateFile(t, req, directName)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(src, "case 0x78: // needs_more") || strings.Contains(src, "case 0x70: // needs_more") {
		t.Errorf("needs_more moved to field 15 is not read with tag 0x78:\n%s", src)
	}
}

func TestDirectOptionErrors(t *testing.T) {
	t.Parallel()
	const rh = "decoder=sentinel.agent.v2.ProxyToAgent.request_headers:recycled"
	tests := []struct {
		name string
		opts []string
		want []string // substrings of the error
	}{
		{"unknown message", []string{"direct=sentinel.agent.v2.Nope"}, []string{"direct=sentinel.agent.v2.Nope", "no such message"}},
		{"unknown field", []string{"direct=sentinel.agent.v2.Header:name+nope"}, []string{"Header has no field nope"}},
		{"bad mode", []string{"decoder=sentinel.agent.v2.ProxyToAgent.request_headers:pool"}, []string{"arena=<bytes>", "recycled"}},
		{"bad arena", []string{"decoder=sentinel.agent.v2.AgentToProxy.response:arena=x"}, []string{"arena takes a number"}},
		{"not a case", []string{"direct=sentinel.agent.v2.Header", "decoder=sentinel.agent.v2.AgentToProxy.event_id:arena=64"},
			[]string{"AgentToProxy.event_id", "not a message case"}},
		{"case not direct", []string{rh}, []string{"RequestHeadersEvent is not named by a direct option"}},
		{"map", []string{"direct=sentinel.agent.v2.RegistrationRequest", "decoder=sentinel.agent.v2.AgentToProxy.registration:arena=0"},
			[]string{"RegistrationRequest.metadata", "maps"}},
		{"repeated string", []string{"direct=sentinel.agent.v2.AuditMetadata:tags", "direct=sentinel.agent.v2.AgentResponse:audit",
			"decoder=sentinel.agent.v2.AgentToProxy.response:arena=0"}, []string{"AuditMetadata.tags", "repeated messages only"}},
		{"float", []string{"direct=sentinel.agent.v2.AuditMetadata:confidence", "direct=sentinel.agent.v2.AgentResponse:audit",
			"decoder=sentinel.agent.v2.AgentToProxy.response:arena=0"}, []string{"AuditMetadata.confidence", "float"}},
		{"arena envelope string", []string{"direct=sentinel.agent.v2.AgentResponse", "direct=sentinel.agent.v2.AgentToProxy:handshake",
			"decoder=sentinel.agent.v2.AgentToProxy.response:arena=0"}, []string{"AgentToProxy.handshake", "only plain varint fields"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := generateFile(t, withParams(knownRequest(), tt.opts...), directName)
			if err == nil {
				t.Fatalf("generation succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestNoDecodersNoFile: without decoder options there is no direct file.
func TestNoDecodersNoFile(t *testing.T) {
	t.Parallel()
	plugin, err := protogen.Options{}.New(withParams(knownRequest()))
	if err != nil {
		t.Fatal(err)
	}
	if err := run(plugin); err != nil {
		t.Fatal(err)
	}
	for _, f := range plugin.Response().File {
		if f.GetName() == directName {
			t.Errorf("%s generated without decoders", directName)
		}
	}
}

// message edits a message of agent.proto in req.
func message(t *testing.T, req *pluginpb.CodeGeneratorRequest, name string, edit func(*descriptorpb.DescriptorProto)) {
	t.Helper()
	for _, f := range req.ProtoFile {
		if f.GetName() != agentProto {
			continue
		}
		for _, m := range f.MessageType {
			if m.GetName() == name {
				edit(m)
				return
			}
		}
	}
	t.Fatalf("no message %s in %s", name, agentProto)
}
