package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// The extraevent fixture is the schema plus one event kind, tls_client_hello:
// what a schema change adding an event looks like. These tests show that
// buf generate alone makes the SDK speak it.
const (
	fixtureProto    = "testdata/extraevent/sentinel/agent/v2/agent.proto"
	fixtureTemplate = "testdata/extraevent/buf.gen.yaml"
	fixtureTest     = "testdata/extraevent/agent_test.go"
	schemaDir       = "../../proto/sentinel/agent/v2"
	repoRoot        = "../.."
)

// fixtureBlock is a block of lines only the fixture has.
var fixtureBlock = regexp.MustCompile(`(?ms)^[ \t]*// BEGIN fixture\n.*?^[ \t]*// END fixture\n`)

// TestExtraEventFixture keeps the fixture equal to the schema outside its
// fixture blocks.
func TestExtraEventFixture(t *testing.T) {
	t.Parallel()
	fixture, err := os.ReadFile(fixtureProto)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := os.ReadFile(filepath.Join(schemaDir, "agent.proto"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fixtureBlock.ReplaceAllString(string(fixture), ""); got != string(schema) {
		t.Errorf("%s outside its fixture blocks differs from the schema: copy agent.proto over it and put the blocks back:\n%s",
			fixtureProto, lineDiff(string(schema), got))
	}
}

// TestExtraEventTemplate keeps the fixture's template a part of buf.gen.yaml.
func TestExtraEventTemplate(t *testing.T) {
	t.Parallel()
	root, err := os.ReadFile(filepath.Join(repoRoot, "buf.gen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(fixtureTemplate)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := map[string]bool{}
	for _, l := range strings.Split(string(root), "\n") {
		lines[l] = true
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); !strings.HasPrefix(l, "#") && !lines[l] {
			t.Errorf("%s: line %q is not in buf.gen.yaml", fixtureTemplate, l)
		}
	}
}

// fixtureModule lays out the fixture and the schema's options.proto as a buf
// module of its own, outside the repository's workspace.
func fixtureModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	pkg := filepath.Join(dir, "sentinel", "agent", "v2")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	for dst, src := range map[string]string{
		"agent.proto":   fixtureProto,
		"options.proto": filepath.Join(schemaDir, "options.proto"),
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkg, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// goTool runs a go command at the repository's root, where tools.mod pins
// buf and the protoc plugins; the go test binary's toolchain runs it.
func goTool(t *testing.T, args ...string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	cmd := exec.Command(gobin, args...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fixtureRequest compiles the fixture with buf and builds the request buf
// generate would send for it.
func fixtureRequest(t *testing.T) *pluginpb.CodeGeneratorRequest {
	t.Helper()
	out := filepath.Join(t.TempDir(), "fixture.binpb")
	goTool(t, "tool", "-modfile=tools.mod", "buf", "build", fixtureModule(t), "--as-file-descriptor-set", "-o", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(b, set); err != nil {
		t.Fatal(err)
	}
	req := &pluginpb.CodeGeneratorRequest{FileToGenerate: []string{agentProto}, ProtoFile: set.File}
	params := []string{"paths=source_relative"}
	for _, f := range set.File {
		if strings.HasPrefix(f.GetName(), "sentinel/") {
			params = append(params, "M"+f.GetName()+"=github.com/agentwire/agentwire/gen/sentinel/agent/v2;agentv2")
		}
	}
	req.Parameter = proto.String(strings.Join(params, ","))
	return req
}

// TestExtraEventGenerated: the new kind gets its table entry, accessors,
// handler and base methods, dispatch arm, visitor and base methods, visit
// arm, and its bytes field is clipped.
func TestExtraEventGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the fixture with buf")
	}
	t.Parallel()
	req := fixtureRequest(t)
	events, err := generateFile(t, req, eventsName)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`{Type: EventType_EVENT_TYPE_TLS_CLIENT_HELLO, Field: "tls_client_hello", Message: "sentinel.agent.v2.TlsClientHelloEvent", Method: "TlsClientHello", Ack: false},`,
		"\tcase *ProxyToAgent_TlsClientHello:\n\t\treturn EventType_EVENT_TYPE_TLS_CLIENT_HELLO\n",
		"\tcase *ProxyToAgent_TlsClientHello:\n\t\treturn m.TlsClientHello.GetCorrelationId(), true\n",
		"\tTlsClientHello(context.Context, *TlsClientHelloEvent) (*AgentResponse, error)\n",
		"func (UnimplementedEventHandler) TlsClientHello(context.Context, *TlsClientHelloEvent) (*AgentResponse, error) {\n\treturn nil, nil\n}",
		"\tcase *ProxyToAgent_TlsClientHello:\n\t\tresp, err = h.TlsClientHello(ctx, m.TlsClientHello)\n",
		"\tVisitTlsClientHello(x *ProxyToAgent, m *TlsClientHelloEvent) R\n",
		"func (UnimplementedEventVisitor[R]) VisitTlsClientHello(*ProxyToAgent, *TlsClientHelloEvent) (r R) {\n\treturn r\n}",
		"\tcase *ProxyToAgent_TlsClientHello:\n\t\treturn v.VisitTlsClientHello(x, m.TlsClientHello), true\n",
	} {
		if !strings.Contains(events, want) {
			t.Errorf("%s lacks %q", eventsName, want)
		}
	}
	uds, err := generateFile(t, req, generatedName)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ProxyToAgentFrameTlsClientHello       FrameType = 0x18 // tls_client_hello",
		"\tcase *ProxyToAgent_TlsClientHello:\n\t\tclipBytesTlsClientHelloEvent(o.TlsClientHello)\n",
		"\tm.Fingerprint = slices.Clip(m.Fingerprint)\n",
	} {
		if !strings.Contains(uds, want) {
			t.Errorf("%s lacks %q", generatedName, want)
		}
	}
}

// TestExtraEventEndToEnd generates gen/ from the fixture with buf generate
// and the repository's Go plugins, overlays it on the module, and runs the
// agent package's testdata/extraevent/agent_test.go against it: the SDK,
// unchanged, compiles, declares the new kind in its handshake and serves it
// over a Unix socket and gRPC, to a handler that implements it and to one
// that only embeds agent.Base.
func TestExtraEventEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and builds a module")
	}
	t.Parallel()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	template, err := filepath.Abs(fixtureTemplate)
	if err != nil {
		t.Fatal(err)
	}
	goTool(t, "tool", "-modfile=tools.mod", "buf", "generate", fixtureModule(t), "--template", template, "-o", out)

	// Every generated Go file of the fixture stands in for its namesake in
	// gen/, and none of gen/ is left over from the real schema.
	replace := map[string]string{}
	fresh := filepath.Join(out, "gen")
	err = filepath.WalkDir(fresh, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		rel, _ := filepath.Rel(fresh, path)
		replace[filepath.Join(root, "gen", rel)] = path
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(filepath.Join(root, "gen", "sentinel"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") && replace[path] == "" {
			t.Errorf("the fixture's generation has no counterpart of %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if replace[filepath.Join(root, "gen", eventsName)] == "" {
		t.Fatalf("no %s generated", eventsName)
	}
	test, err := filepath.Abs(fixtureTest)
	if err != nil {
		t.Fatal(err)
	}
	replace[filepath.Join(root, "agent", "zz_extraevent_test.go")] = test
	overlay := filepath.Join(t.TempDir(), "overlay.json")
	b, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(overlay, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got := goTool(t, "test", "-overlay", overlay, "-count=1", "-run", "^TestExtraEventServed$", "-v", "./agent")
	if !strings.Contains(got, "--- PASS: TestExtraEventServed") {
		t.Errorf("the overlaid agent test did not run:\n%s", got)
	}
	t.Logf("go test ./agent with the fixture's gen/:\n%s", got)
}
