package transport

import (
	"math/rand/v2"
	"strings"
	"testing"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Field numbers the tests build encodings with, read from the schema.
var (
	fieldEnvelopeResponse = fieldNumber(&agentv2.AgentToProxy{}, "response")
	fieldEnvelopeEventID  = fieldNumber(&agentv2.AgentToProxy{}, "event_id")
	fieldRespAllow        = fieldNumber(&agentv2.AgentResponse{}, "allow")
	fieldRespRequestOps   = fieldNumber(&agentv2.AgentResponse{}, "request_headers")
	fieldRespNeedsMore    = fieldNumber(&agentv2.AgentResponse{}, "needs_more")
)

func fieldNumber(m proto.Message, name protoreflect.Name) protowire.Number {
	return m.ProtoReflect().Descriptor().Fields().ByName(name).Number()
}

func setOp(name, value string) *agentv2.HeaderOp {
	return &agentv2.HeaderOp{Operation: &agentv2.HeaderOp_Set{Set: &agentv2.Header{Name: name, Value: value}}}
}

func addOp(name, value string) *agentv2.HeaderOp {
	return &agentv2.HeaderOp{Operation: &agentv2.HeaderOp_Add{Add: &agentv2.Header{Name: name, Value: value}}}
}

func removeOp(name string) *agentv2.HeaderOp {
	return &agentv2.HeaderOp{Operation: &agentv2.HeaderOp_Remove{Remove: name}}
}

func allow() *agentv2.AgentResponse_Allow {
	return &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}
}

func envelope(id uint64, r *agentv2.AgentResponse) *agentv2.AgentToProxy {
	return &agentv2.AgentToProxy{EventId: id, Message: &agentv2.AgentToProxy_Response{Response: r}}
}

func marshal(t testing.TB, m *agentv2.AgentToProxy) []byte {
	t.Helper()
	b, err := m.MarshalVT()
	require.NoError(t, err)
	return b
}

// checkFast decodes src on the fast path and compares the result with the
// generated decoder's, then scribbles over src: the result must not alias it.
func checkFast(t *testing.T, src []byte) {
	t.Helper()
	var want agentv2.AgentToProxy
	require.NoError(t, want.UnmarshalVT(src))
	var got agentv2.AgentToProxy
	require.True(t, decodeResponse(&got, src), "fast path declined")
	assert.True(t, got.EqualVT(&want), "fast:\n%v\ngenerated:\n%v", &got, &want)
	for i := range src {
		src[i] = 0xff
	}
	assert.True(t, got.EqualVT(&want), "the result aliases its input")
}

func TestDecodeResponseShapes(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("v", 300)
	many := make([]*agentv2.HeaderOp, 0, 9)
	for i := range 9 {
		many = append(many, [](func() *agentv2.HeaderOp){
			func() *agentv2.HeaderOp { return setOp("x-set", "1") },
			func() *agentv2.HeaderOp { return addOp("x-add", "2") },
			func() *agentv2.HeaderOp { return removeOp("cookie") },
		}[i%3]())
	}
	ptime := uint64(7)
	for name, r := range map[string]*agentv2.AgentResponse{
		"empty":             {},
		"allow":             {CorrelationId: "c1", Decision: allow()},
		"allow one set":     {CorrelationId: "c000001", Decision: allow(), RequestHeaders: []*agentv2.HeaderOp{setOp("x-waf", "pass")}},
		"no decision":       {CorrelationId: "c1", ResponseHeaders: []*agentv2.HeaderOp{addOp("x-seen", "1")}},
		"both lists":        {CorrelationId: "c1", Decision: allow(), RequestHeaders: []*agentv2.HeaderOp{setOp("a", "b"), removeOp("c")}, ResponseHeaders: []*agentv2.HeaderOp{addOp("d", "")}},
		"many ops":          {CorrelationId: "c1", Decision: allow(), RequestHeaders: many, ResponseHeaders: many[:4]},
		"empty op":          {RequestHeaders: []*agentv2.HeaderOp{{}}},
		"empty header":      {RequestHeaders: []*agentv2.HeaderOp{{Operation: &agentv2.HeaderOp_Set{Set: &agentv2.Header{}}}}},
		"long strings":      {CorrelationId: long, Decision: allow(), RequestHeaders: []*agentv2.HeaderOp{setOp(long, long)}},
		"time and needs":    {CorrelationId: "c1", ProcessingTimeMs: &ptime, NeedsMore: true},
		"zero time":         {ProcessingTimeMs: new(uint64)},
		"remove only":       {RequestHeaders: []*agentv2.HeaderOp{removeOp("x")}},
		"correlation alone": {CorrelationId: "only"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, id := range []uint64{0, 1, 1 << 40} {
				checkFast(t, marshal(t, envelope(id, r)))
			}
		})
	}
}

func TestDecodeResponseDeclines(t *testing.T) {
	t.Parallel()
	status := uint32(403)
	cases := map[string][]byte{
		"block":     marshal(t, envelope(1, &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Block{Block: &agentv2.BlockDecision{Status: status}}})),
		"redirect":  marshal(t, envelope(1, &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Redirect{Redirect: &agentv2.RedirectDecision{Url: "https://x"}}})),
		"error":     marshal(t, envelope(1, &agentv2.AgentResponse{Error: &agentv2.Status{Code: 7, Message: "no"}})),
		"audit":     marshal(t, envelope(1, &agentv2.AgentResponse{Decision: allow(), Audit: &agentv2.AuditMetadata{Tags: []string{"t"}}})),
		"health":    marshal(t, &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Health{Health: &agentv2.HealthStatus{AgentId: "a"}}}),
		"nothing":   marshal(t, &agentv2.AgentToProxy{EventId: 3}),
		"truncated": marshal(t, envelope(1, &agentv2.AgentResponse{CorrelationId: "c1", Decision: allow()}))[:5],
	}
	// Unknown fields, where the generated decoder keeps them.
	resp := marshal(t, envelope(0, &agentv2.AgentResponse{CorrelationId: "c1"}))
	cases["unknown envelope field"] = protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), resp...), 50, protowire.VarintType), 1)
	body := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)
	cases["unknown response field"] = protowire.AppendBytes(protowire.AppendTag(nil, fieldEnvelopeResponse, protowire.BytesType), body)
	allowBody := protowire.AppendBytes(protowire.AppendTag(nil, fieldRespAllow, protowire.BytesType), body)
	cases["unknown allow field"] = protowire.AppendBytes(protowire.AppendTag(nil, fieldEnvelopeResponse, protowire.BytesType), allowBody)
	// A second response field merges into the first in the generated decoder.
	cases["two responses"] = append(append([]byte(nil), resp...), resp...)
	// A HeaderOp with two operations keeps the last one there.
	op := append(marshalOp(t, setOp("a", "1")), marshalOp(t, removeOp("b"))...)
	opBody := protowire.AppendBytes(protowire.AppendTag(nil, fieldRespRequestOps, protowire.BytesType), op)
	cases["two operations"] = protowire.AppendBytes(protowire.AppendTag(nil, fieldEnvelopeResponse, protowire.BytesType), opBody)
	// Wire type mismatches.
	cases["event id as bytes"] = protowire.AppendBytes(protowire.AppendTag(nil, fieldEnvelopeEventID, protowire.BytesType), []byte{1})
	cases["needs_more as bytes"] = protowire.AppendBytes(protowire.AppendTag(nil, fieldEnvelopeResponse, protowire.BytesType),
		protowire.AppendBytes(protowire.AppendTag(nil, fieldRespNeedsMore, protowire.BytesType), nil))

	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			m := &agentv2.AgentToProxy{EventId: 42}
			assert.False(t, decodeResponse(m, src))
			assert.Equal(t, uint64(42), m.GetEventId(), "m changed although the fast path declined")
		})
	}
}

func marshalOp(t *testing.T, op *agentv2.HeaderOp) []byte {
	t.Helper()
	b, err := op.MarshalVT()
	require.NoError(t, err)
	return b
}

// randomResponse is a response of the shapes the fast path handles.
func randomResponse(r *rand.Rand) *agentv2.AgentResponse {
	str := func() string {
		b := make([]byte, r.IntN(3)*r.IntN(60))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return string(b)
	}
	ops := func() []*agentv2.HeaderOp {
		var out []*agentv2.HeaderOp
		for range r.IntN(3) * r.IntN(4) {
			switch r.IntN(4) {
			case 0:
				out = append(out, setOp(str(), str()))
			case 1:
				out = append(out, addOp(str(), str()))
			case 2:
				out = append(out, removeOp(str()))
			default:
				out = append(out, &agentv2.HeaderOp{})
			}
		}
		return out
	}
	resp := &agentv2.AgentResponse{CorrelationId: str(), RequestHeaders: ops(), ResponseHeaders: ops(), NeedsMore: r.IntN(4) == 0}
	if r.IntN(4) > 0 {
		resp.Decision = allow()
	}
	if r.IntN(3) == 0 {
		v := r.Uint64() >> r.IntN(64)
		resp.ProcessingTimeMs = &v
	}
	return resp
}

func TestDecodeResponseRandom(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		checkFast(t, marshal(t, envelope(r.Uint64()>>r.IntN(64), randomResponse(r))))
	}
}

func TestDecodeResponseAllocations(t *testing.T) {
	src := marshal(t, envelope(12345, &agentv2.AgentResponse{CorrelationId: "c000001", Decision: allow(),
		RequestHeaders: []*agentv2.HeaderOp{setOp("x-waf", "pass")}}))
	var m agentv2.AgentToProxy
	allocs := testing.AllocsPerRun(100, func() {
		if !decodeResponse(&m, src) {
			t.Fatal("declined")
		}
	})
	assert.Equal(t, 1.0, allocs)
}

// FuzzDecodeResponse: whatever the fast path accepts, the generated
// decoder accepts too, with the same result.
func FuzzDecodeResponse(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		f.Add(marshal(f, envelope(r.Uint64(), randomResponse(r))))
	}
	f.Add(marshal(f, envelope(1, &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Block{Block: &agentv2.BlockDecision{Status: 403}}})))
	f.Fuzz(func(t *testing.T, src []byte) {
		var got agentv2.AgentToProxy
		if !decodeResponse(&got, src) {
			return
		}
		var want agentv2.AgentToProxy
		if err := want.UnmarshalVT(src); err != nil {
			t.Fatalf("fast path accepted what the generated decoder rejects: %v", err)
		}
		if !got.EqualVT(&want) {
			t.Fatalf("fast:\n%v\ngenerated:\n%v", &got, &want)
		}
	})
}

func BenchmarkDecodeResponse(b *testing.B) {
	src := marshal(b, envelope(12345, &agentv2.AgentResponse{CorrelationId: "c000001", Decision: allow(),
		RequestHeaders: []*agentv2.HeaderOp{setOp("x-waf", "pass")}}))
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		var m agentv2.AgentToProxy
		for b.Loop() {
			decodeResponse(&m, src)
		}
	})
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		var m agentv2.AgentToProxy
		for b.Loop() {
			m.Reset()
			if err := m.UnmarshalVTUnsafe(append([]byte(nil), src...)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
