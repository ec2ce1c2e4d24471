package agent

import (
	"testing"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"google.golang.org/protobuf/proto"
)

// TestBuildersAreOrdinaryMessages: what the single-allocation builders
// return encodes, decodes and compares like messages built field by field.
func TestBuildersAreOrdinaryMessages(t *testing.T) {
	t.Parallel()
	r := Allow()
	r.RequestHeaders = append(r.RequestHeaders, SetHeader("x-a", "1"), AddHeader("x-b", "2"), RemoveHeader("cookie"))
	want := &agentv2.AgentResponse{
		Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}},
		RequestHeaders: []*agentv2.HeaderOp{
			{Operation: &agentv2.HeaderOp_Set{Set: &agentv2.Header{Name: "x-a", Value: "1"}}},
			{Operation: &agentv2.HeaderOp_Add{Add: &agentv2.Header{Name: "x-b", Value: "2"}}},
			{Operation: &agentv2.HeaderOp_Remove{Remove: "cookie"}},
		},
	}
	b := Block(451, "legal")
	body := "legal"
	wantBlock := &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Block{Block: &agentv2.BlockDecision{Status: 451, Body: &body}}}
	tagged := AllowSetRequestHeader("x-waf", "pass")
	wantTagged := &agentv2.AgentResponse{
		Decision:       &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}},
		RequestHeaders: []*agentv2.HeaderOp{{Operation: &agentv2.HeaderOp_Set{Set: &agentv2.Header{Name: "x-waf", Value: "pass"}}}},
	}
	// Appending to the one-slot slice must not overwrite anything.
	tagged2 := AllowSetRequestHeader("x-a", "1")
	tagged2.RequestHeaders = append(tagged2.RequestHeaders, AddHeader("x-b", "2"))
	wantTagged2 := &agentv2.AgentResponse{
		Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}},
		RequestHeaders: []*agentv2.HeaderOp{
			{Operation: &agentv2.HeaderOp_Set{Set: &agentv2.Header{Name: "x-a", Value: "1"}}},
			{Operation: &agentv2.HeaderOp_Add{Add: &agentv2.Header{Name: "x-b", Value: "2"}}},
		},
	}
	for _, tc := range []struct{ got, want *agentv2.AgentResponse }{{r, want}, {b, wantBlock}, {tagged, wantTagged}, {tagged2, wantTagged2}} {
		raw, err := tc.got.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		var back agentv2.AgentResponse
		if err := back.UnmarshalVT(raw); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&back, tc.want) || !proto.Equal(tc.got, tc.want) {
			t.Errorf("got %v, want %v", &back, tc.want)
		}
	}
}

// TestBuildersAllocateOnce is not parallel: AllocsPerRun counts the whole
// process.
func TestBuildersAllocateOnce(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = Allow() }); n != 1 {
		t.Errorf("Allow: %v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = AllowSetRequestHeader("a", "b") }); n != 1 {
		t.Errorf("AllowSetRequestHeader: %v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = SetHeader("a", "b") }); n != 1 {
		t.Errorf("SetHeader: %v allocations, want 1", n)
	}
}
