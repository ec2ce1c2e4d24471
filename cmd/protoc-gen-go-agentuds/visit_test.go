package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

const (
	visitName      = "sentinel/agent/v2/agent_visit.pb.go"
	visitGolden    = "testdata/agent_visit.golden"
	visitCommitted = "../../gen/sentinel/agent/v2/agent_visit.pb.go"
)

// checkGolden compares the plugin's output for name with its golden file
// (rewritten under -update), and the golden file with what buf generate
// committed to gen/.
func checkGolden(t *testing.T, name, golden, committed string) {
	t.Helper()
	got, err := generateFile(t, request(t), name)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update to accept):\n%s", golden, lineDiff(string(want), got))
	}
	gen, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, gen) {
		t.Errorf("%s differs from %s: regenerate with buf generate, then go test -update:\n%s",
			golden, committed, lineDiff(string(gen), string(want)))
	}
}

func TestVisitGolden(t *testing.T) {
	t.Parallel()
	checkGolden(t, visitName, visitGolden, visitCommitted)
}

// TestVisitorLeavesEventsOut: the ProxyToAgent visitor has a method for
// every case that is not an event; without events it takes every case.
func TestVisitorLeavesEventsOut(t *testing.T) {
	t.Parallel()
	base, err := generateFile(t, knownRequest(), visitName)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"type ProxyToAgentControlVisitor interface",
		"VisitPong(x *ProxyToAgent, m *Pong) error",
		"type AgentToProxyVisitor interface",
		"VisitResponse(x *AgentToProxy, m *AgentResponse) error",
	} {
		if !strings.Contains(base, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, event := range []string{"RequestHeaders", "Configure", "RequestComplete"} {
		if strings.Contains(base, "Visit"+event+"(") {
			t.Errorf("the event %s has a visitor method", event)
		}
	}

	noEvents := knownRequest()
	for _, f := range []string{"request_headers", "request_body_chunk", "response_headers", "response_body_chunk",
		"websocket_frame", "guardrail", "request_complete", "configure"} {
		proto.ClearExtension(fieldOptions(t, noEvents, "ProxyToAgent", f), agentv2.E_Event)
	}
	all, err := generateFile(t, noEvents, visitName)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"type ProxyToAgentVisitor interface",
		"func VisitProxyToAgent(v ProxyToAgentVisitor, x *ProxyToAgent) (known bool, err error)",
		"VisitRequestHeaders(x *ProxyToAgent, m *RequestHeadersEvent) error",
		"VisitConfigure(x *ProxyToAgent, m *ConfigureEvent) error",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("output without events lacks %q", want)
		}
	}
}
