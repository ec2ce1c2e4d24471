package main

import (
	"bytes"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

var update = flag.Bool("update", false, "rewrite testdata/agent_uds.golden from the generator's output")

const (
	agentProto    = "sentinel/agent/v2/agent.proto"
	generatedName = "sentinel/agent/v2/agent_uds.pb.go"
	goldenPath    = "testdata/agent_uds.golden"
	committedPath = "../../gen/sentinel/agent/v2/agent_uds.pb.go"
)

// request builds the CodeGeneratorRequest buf sends for the schema: the
// schema's files and their imports in dependency order, agent.proto to
// generate, paths=source_relative and the direct decoders' options of
// buf.gen.yaml. The descriptors come from the generated
// Go package, which carries buf's managed go_package.
//
// The request goes through its wire form and is parsed with no extensions
// registered, as the plugin binary (which does not link gen/) parses stdin:
// frame ids then sit in the FieldOptions' unknown bytes.
func request(t *testing.T) *pluginpb.CodeGeneratorRequest {
	t.Helper()
	req := knownRequest()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatalf("marshal request: %v", err)
	}
	parsed := &pluginpb.CodeGeneratorRequest{}
	if err := (proto.UnmarshalOptions{Resolver: new(protoregistry.Types)}).Unmarshal(b, parsed); err != nil {
		t.Fatalf("unmarshal request: %v", err)
	}
	return parsed
}

// knownRequest is the request as built in this process, where gen/ is linked
// and the frame_type extension is a known field of FieldOptions.
func knownRequest() *pluginpb.CodeGeneratorRequest {
	req := &pluginpb.CodeGeneratorRequest{
		FileToGenerate: []string{agentProto},
		Parameter:      proto.String(strings.Join(append([]string{"paths=source_relative"}, directOptions()...), ",")),
	}
	for _, fd := range []protoreflect.FileDescriptor{
		descriptorpb.File_google_protobuf_descriptor_proto,
		agentv2.File_sentinel_agent_v2_options_proto,
		agentv2.File_sentinel_agent_v2_agent_proto,
	} {
		req.ProtoFile = append(req.ProtoFile, protodesc.ToFileDescriptorProto(fd))
	}
	return req
}

// generateFrom runs the plugin in-process on req and returns the content of
// the frame file, or the generator's error.
func generateFrom(t *testing.T, req *pluginpb.CodeGeneratorRequest) (string, error) {
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
	if resp.GetSupportedFeatures()&uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL) == 0 {
		t.Errorf("plugin does not declare proto3 optional support")
	}
	var names []string
	for _, f := range resp.File {
		names = append(names, f.GetName())
		if f.GetName() == generatedName {
			return f.GetContent(), nil
		}
	}
	t.Fatalf("no %s in the response; files: %v", generatedName, names)
	return "", nil
}

func TestGolden(t *testing.T) {
	t.Parallel()
	got, err := generateFrom(t, request(t))
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update to accept):\n%s", goldenPath, lineDiff(string(want), got))
	}
}

// TestGoldenIsCommitted keeps the golden file, and so this test's request,
// faithful to what buf generate produced for gen/.
func TestGoldenIsCommitted(t *testing.T) {
	t.Parallel()
	golden, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(committedPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(golden, committed) {
		t.Errorf("%s differs from %s: regenerate with buf generate, then go test -update:\n%s",
			goldenPath, committedPath, lineDiff(string(committed), string(golden)))
	}
}

// TestKnownExtension: when the option is parsed as a registered extension
// rather than left in unknown bytes, the output is the same.
func TestKnownExtension(t *testing.T) {
	t.Parallel()
	req := knownRequest()
	opts := fieldOptions(t, req, "ProxyToAgent", "ping")
	if !proto.HasExtension(opts, agentv2.E_FrameType) {
		t.Fatalf("frame_type is not a known extension in the in-process request")
	}
	got, err := generateFrom(t, req)
	if err != nil {
		t.Fatal(err)
	}
	want, err := generateFrom(t, request(t))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("known and unknown extension outputs differ:\n%s", lineDiff(want, got))
	}
}

func TestFrameIDChangesConstant(t *testing.T) {
	t.Parallel()
	base, err := generateFrom(t, request(t))
	if err != nil {
		t.Fatal(err)
	}
	before := frameConstants(t, base)
	if before["ProxyToAgentFramePing"] != 0x41 {
		t.Fatalf("ProxyToAgentFramePing = %#x in the unmodified output, want 0x41", before["ProxyToAgentFramePing"])
	}

	t.Run("unknown bytes", func(t *testing.T) {
		t.Parallel()
		req := request(t)
		setFrameID(t, fieldOptions(t, req, "ProxyToAgent", "ping"), 0x45)
		checkOnlyPingChanged(t, req, before)
	})
	t.Run("extension", func(t *testing.T) {
		t.Parallel()
		req := knownRequest()
		proto.SetExtension(fieldOptions(t, req, "ProxyToAgent", "ping"), agentv2.E_FrameType, uint32(0x45))
		checkOnlyPingChanged(t, req, before)
	})
}

func checkOnlyPingChanged(t *testing.T, req *pluginpb.CodeGeneratorRequest, before map[string]uint64) {
	t.Helper()
	src, err := generateFrom(t, req)
	if err != nil {
		t.Fatal(err)
	}
	after := frameConstants(t, src)
	if len(after) != len(before) {
		t.Errorf("%d constants, want %d", len(after), len(before))
	}
	for name, v := range before {
		want := v
		if name == "ProxyToAgentFramePing" {
			want = 0x45
		}
		if after[name] != want {
			t.Errorf("%s = %#x, want %#x", name, after[name], want)
		}
	}
	// The table and switch follow the constant; the table is sorted by id,
	// so ping (now 0x45) moves after shutdown (0x44).
	if i, j := strings.Index(src, "{Type: ProxyToAgentFrameShutdown,"), strings.Index(src, "{Type: ProxyToAgentFramePing,"); i < 0 || j < 0 || j < i {
		t.Errorf("ProxyToAgentFrames not re-sorted by the new id")
	}
}

func TestInvalidFrameIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(t *testing.T, req *pluginpb.CodeGeneratorRequest)
		want   []string // substrings of the error
	}{
		{
			name: "duplicate",
			mutate: func(t *testing.T, req *pluginpb.CodeGeneratorRequest) {
				setFrameID(t, fieldOptions(t, req, "ProxyToAgent", "pong"), 0x41) // ping's id
			},
			want: []string{"sentinel.agent.v2.ProxyToAgent.pong", "ping", "duplicate", "0x41"},
		},
		{
			name: "duplicate in AgentToProxy",
			mutate: func(t *testing.T, req *pluginpb.CodeGeneratorRequest) {
				setFrameID(t, fieldOptions(t, req, "AgentToProxy", "log"), 0x20) // response's id
			},
			want: []string{"sentinel.agent.v2.AgentToProxy.log", "response", "duplicate", "0x20"},
		},
		{
			name: "missing",
			mutate: func(t *testing.T, req *pluginpb.CodeGeneratorRequest) {
				removeFrameID(t, fieldOptions(t, req, "AgentToProxy", "metrics"))
			},
			want: []string{"sentinel.agent.v2.AgentToProxy", "missing frame_type", "metrics"},
		},
		{
			name: "zero",
			mutate: func(t *testing.T, req *pluginpb.CodeGeneratorRequest) {
				setFrameID(t, fieldOptions(t, req, "ProxyToAgent", "cancel"), 0)
			},
			want: []string{"sentinel.agent.v2.ProxyToAgent.cancel", "frame_type 0 out of range"},
		},
		{
			name: "256",
			mutate: func(t *testing.T, req *pluginpb.CodeGeneratorRequest) {
				setFrameID(t, fieldOptions(t, req, "ProxyToAgent", "drain"), 256)
			},
			want: []string{"sentinel.agent.v2.ProxyToAgent.drain", "frame_type 256 out of range"},
		},
		{
			name: "malformed option bytes",
			mutate: func(t *testing.T, req *pluginpb.CodeGeneratorRequest) {
				opts := fieldOptions(t, req, "ProxyToAgent", "drain")
				removeFrameID(t, opts)
				tag := protowire.AppendTag(nil, frameTypeNumber(), protowire.VarintType)
				opts.ProtoReflect().SetUnknown(append(tag, 0x80)) // varint cut short
			},
			want: []string{"sentinel.agent.v2.ProxyToAgent.drain", "malformed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := request(t)
			tt.mutate(t, req)
			src, err := generateFrom(t, req)
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

// TestUnrelatedOptionsKept: other options on a case do not disturb reading
// the frame id from unknown bytes.
func TestUnrelatedOptionsKept(t *testing.T) {
	t.Parallel()
	req := request(t)
	opts := fieldOptions(t, req, "ProxyToAgent", "ping")
	opts.Deprecated = proto.Bool(true)
	b := opts.ProtoReflect().GetUnknown()
	b = protowire.AppendTag(b, 50999, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("other plugin's option"))
	opts.ProtoReflect().SetUnknown(b)
	src, err := generateFrom(t, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := frameConstants(t, src)["ProxyToAgentFramePing"]; got != 0x41 {
		t.Errorf("ProxyToAgentFramePing = %#x, want 0x41", got)
	}
}

func frameTypeNumber() protowire.Number {
	return agentv2.E_FrameType.TypeDescriptor().Number()
}

// fieldOptions returns the (created if absent) options of a field of a
// message of agent.proto in req.
func fieldOptions(t *testing.T, req *pluginpb.CodeGeneratorRequest, msg, field string) *descriptorpb.FieldOptions {
	t.Helper()
	for _, f := range req.ProtoFile {
		if f.GetName() != agentProto {
			continue
		}
		for _, m := range f.MessageType {
			if m.GetName() != msg {
				continue
			}
			for _, fd := range m.Field {
				if fd.GetName() == field {
					if fd.Options == nil {
						fd.Options = &descriptorpb.FieldOptions{}
					}
					return fd.Options
				}
			}
		}
	}
	t.Fatalf("no field %s.%s in %s", msg, field, agentProto)
	return nil
}

// removeFrameID deletes the frame id from opts, known or unknown.
func removeFrameID(t *testing.T, opts *descriptorpb.FieldOptions) {
	t.Helper()
	proto.ClearExtension(opts, agentv2.E_FrameType)
	var kept []byte
	b := opts.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeField(b)
		if n < 0 {
			t.Fatalf("options: %v", protowire.ParseError(n))
		}
		if num != frameTypeNumber() || typ != protowire.VarintType {
			kept = append(kept, b[:n]...)
		}
		b = b[n:]
	}
	opts.ProtoReflect().SetUnknown(kept)
}

// setFrameID writes id into opts' unknown bytes, as protoc encodes the option.
func setFrameID(t *testing.T, opts *descriptorpb.FieldOptions, id uint64) {
	t.Helper()
	removeFrameID(t, opts)
	b := opts.ProtoReflect().GetUnknown()
	b = protowire.AppendTag(b, frameTypeNumber(), protowire.VarintType)
	b = protowire.AppendVarint(b, id)
	opts.ProtoReflect().SetUnknown(b)
}

// frameConstants parses generated source and returns its FrameType
// constants by name.
func frameConstants(t *testing.T, src string) map[string]uint64 {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), generatedName, src, 0)
	if err != nil {
		t.Fatalf("generated code does not parse: %v", err)
	}
	out := map[string]uint64{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "FrameType" {
				continue
			}
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s: value is not a literal", name.Name)
				}
				v, err := strconv.ParseUint(lit.Value, 0, 64)
				if err != nil {
					t.Fatalf("%s: %v", name.Name, err)
				}
				out[name.Name] = v
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no FrameType constants in the generated code")
	}
	return out
}

// lineDiff shows the first differing lines of two texts.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  -" + wl + "\n  +" + gl + "\n")
			shown++
		}
	}
	return b.String()
}
