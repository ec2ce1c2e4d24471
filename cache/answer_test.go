package cache

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// TestCopyAnswer: a hit's copy equals the stored decision (but its
// correlation id) whatever its shape, and changing it changes nothing
// another request gets.
func TestCopyAnswer(t *testing.T) {
	t.Parallel()
	ptime := uint64(7)
	set := func(n, v string) *agentv2.HeaderOp {
		return &agentv2.HeaderOp{Operation: &agentv2.HeaderOp_Set{Set: &agentv2.Header{Name: n, Value: v}}}
	}
	add := &agentv2.HeaderOp{Operation: &agentv2.HeaderOp_Add{Add: &agentv2.Header{Name: "x-add", Value: "1"}}}
	rm := &agentv2.HeaderOp{Operation: &agentv2.HeaderOp_Remove{Remove: "x-rm"}}
	withUnknown := agent.Allow()
	withUnknown.ProtoReflect().SetUnknown([]byte{0xf8, 0x3f, 0x01}) // field 1023, varint 1
	headerUnknown := agent.AllowSetRequestHeader("x-waf", "pass")
	headerUnknown.GetRequestHeaders()[0].GetSet().ProtoReflect().SetUnknown([]byte{0xf8, 0x3f, 0x01})
	for _, tc := range []struct {
		name  string
		resp  *agentv2.AgentResponse
		shape answerShape
	}{
		{"allow", agent.Allow(), shapeAllow},
		{"one set", agent.AllowSetRequestHeader("x-waf", "pass"), shapeAllow},
		{"empty ops", &agentv2.AgentResponse{Decision: agent.Allow().Decision, RequestHeaders: []*agentv2.HeaderOp{}}, shapeAllow},
		{"both directions", &agentv2.AgentResponse{Decision: agent.Allow().Decision,
			RequestHeaders: []*agentv2.HeaderOp{set("a", "1"), add, rm}, ResponseHeaders: []*agentv2.HeaderOp{set("b", "2")}}, shapeAllow},
		{"response only", &agentv2.AgentResponse{Decision: agent.Allow().Decision, ResponseHeaders: []*agentv2.HeaderOp{rm}}, shapeAllow},
		{"nil header", &agentv2.AgentResponse{Decision: agent.Allow().Decision,
			RequestHeaders: []*agentv2.HeaderOp{{Operation: &agentv2.HeaderOp_Set{}}}}, shapeAllow},
		{"audit and time", &agentv2.AgentResponse{Decision: agent.Allow().Decision, Audit: agent.Audit([]string{"t"}, "r1"),
			ProcessingTimeMs: &ptime, NeedsMore: true, RequestHeaders: []*agentv2.HeaderOp{add}}, shapeAllow},
		{"block", agent.Block(403, "no"), shapeClone},
		{"unknown fields", withUnknown, shapeClone},
		{"unknown fields in a header", headerUnknown, shapeClone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := tc.resp.CloneVT()
			require.Equal(t, tc.shape, shapeOf(src))
			got := copyAnswer(src, shapeOf(src), "c2")
			want := tc.resp.CloneVT()
			want.CorrelationId = "c2"
			assert.True(t, got.EqualVT(want), "got %v, want %v", got, want)
			assert.Equal(t, src.GetRequestHeaders() == nil, got.GetRequestHeaders() == nil)
			assert.Equal(t, src.GetResponseHeaders() == nil, got.GetResponseHeaders() == nil)

			// The caller changes everything it can reach.
			for _, op := range append(got.GetRequestHeaders(), got.GetResponseHeaders()...) {
				if h := op.GetSet(); h != nil {
					h.Value = "changed"
				}
				if h := op.GetAdd(); h != nil {
					h.Name = "changed"
				}
				if r, ok := op.GetOperation().(*agentv2.HeaderOp_Remove); ok {
					r.Remove = "changed"
				}
			}
			if got.ProcessingTimeMs != nil {
				*got.ProcessingTimeMs = 99
			}
			if got.Audit != nil {
				got.Audit.Tags[0] = "changed"
			}
			if len(got.RequestHeaders) > 0 {
				got.RequestHeaders[0] = nil
			}
			got.Decision = nil
			assert.True(t, src.EqualVT(tc.resp), "the stored decision is untouched: %v", src)
		})
	}
}

// TestCopyAnswerAllocs: the common hit, an allow with one header
// operation, is one allocation.
func TestCopyAnswerAllocs(t *testing.T) {
	src := agent.AllowSetRequestHeader("x-waf", "pass")
	shape := shapeOf(src)
	n := testing.AllocsPerRun(100, func() { _ = copyAnswer(src, shape, "c") })
	assert.Equal(t, 1.0, n)
}
