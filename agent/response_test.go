package agent

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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

// sharedAnswerHandler answers every request with one response built once.
type sharedAnswerHandler struct {
	Base
	answer *agentv2.AgentResponse
}

func (h sharedAnswerHandler) RequestHeaders(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	return h.answer, nil
}

// TestSharedAnswer: a handler may answer many events, concurrently, with
// the same response: each answer carries its own correlation id and the
// shared response is never written to (the race detector watches).
func TestSharedAnswer(t *testing.T) {
	t.Parallel()
	starts := map[string]func(testing.TB, Handler, ...Option) *env{
		"uds": startUDS, "uds-workers": func(t testing.TB, h Handler, o ...Option) *env {
			return startUDS(t, h, append(o, WithInlineBudget(0))...)
		},
		"grpc": startGRPC, "connect": startConnect,
	}
	for name, start := range starts {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			answer := AllowSetRequestHeader("x-waf", "pass")
			want := answer.CloneVT()
			e := start(t, sharedAnswerHandler{answer: answer})
			c := e.dialReady()
			const n = 500
			go func() {
				for i := range n {
					c.Send(requestHeaders(uint64(i+1), fmt.Sprint("s", i)))
				}
			}()
			got := c.responses(n)
			for id, resp := range got {
				require.Equal(t, fmt.Sprint("s", id-1), resp.GetCorrelationId())
				require.Equal(t, "pass", resp.GetRequestHeaders()[0].GetSet().GetValue())
			}
			require.True(t, want.EqualVT(answer), "the shared answer changed: %v", answer)
		})
	}
}

// TestCopyResponseCopiesEveryField: the reply copies every field of the
// handler's response, unknown fields included, as the schema has them.
func TestCopyResponseCopiesEveryField(t *testing.T) {
	t.Parallel()
	src := &agentv2.AgentResponse{}
	r := src.ProtoReflect()
	fields := r.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsList():
			l := r.Mutable(fd).List()
			l.Append(l.NewElement())
		case fd.Message() != nil:
			r.Set(fd, r.NewField(fd))
		case fd.Kind() == protoreflect.StringKind:
			r.Set(fd, protoreflect.ValueOfString("x"))
		case fd.Kind() == protoreflect.BoolKind:
			r.Set(fd, protoreflect.ValueOfBool(true))
		default:
			r.Set(fd, protoreflect.ValueOfUint64(1))
		}
	}
	r.SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 999, protowire.VarintType), 7))
	src.CorrelationId = "cid"
	got := newReply(1, "cid", src, nil).GetResponse()
	require.True(t, proto.Equal(src, got), "copy %v\nof %v", got, src)
}
