package agent

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// TestDecodeRequestHeadersTakesCommonEncodings: what proxies send (the
// fields in order, with or without metadata, lengths of one or two bytes)
// decodes on the direct path, to the message the generated decoder makes.
func TestDecodeRequestHeadersTakesCommonEncodings(t *testing.T) {
	t.Parallel()
	long := string(make([]byte, 300))
	events := []*agentv2.ProxyToAgent{
		headersEvent20(7),
		requestHeaders(1, "c1"),
		{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{Uri: long}}},
		{EventId: 1 << 62, Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
			Method: "POST", Headers: []*agentv2.Header{{Name: "a"}, {Value: long}, {}},
		}}},
	}
	for i, ev := range events {
		b, err := proto.Marshal(ev)
		require.NoError(t, err)
		m := newEnvelope(scanOK(t, b))
		require.True(t, m.UnmarshalRequestHeadersDirectUnsafe(b), "event %d takes the direct path", i)
		require.True(t, proto.Equal(ev, m), "event %d:\nwant %v\n got %v", i, ev, m)
		releaseEnvelope(m)
	}
}

// TestDecodeRequestHeadersGivesUp: encodings the direct path does not
// follow still decode as the generated decoder has it, through it.
func TestDecodeRequestHeadersGivesUp(t *testing.T) {
	t.Parallel()
	base, err := proto.Marshal(headersEvent20(3))
	require.NoError(t, err)
	withUnknown := func(b []byte) []byte {
		return append(append([]byte(nil), b...), 0xf8, 0x3e, 0x01) // field 999, varint 1
	}
	rh := headersEvent20(4)
	rh.GetRequestHeaders().Headers[3].ProtoReflect().SetUnknown([]byte{0x18, 0x05}) // field 3 in a header
	unknownInHeader, err := proto.Marshal(rh)
	require.NoError(t, err)
	for name, b := range map[string][]byte{
		"unknown envelope field": withUnknown(base),
		"unknown header field":   unknownInHeader,
	} {
		m := newEnvelope(scanOK(t, b))
		require.False(t, m.UnmarshalRequestHeadersDirectUnsafe(b), name)
		releaseEnvelope(m)
		want := new(agentv2.ProxyToAgent)
		require.NoError(t, want.UnmarshalVT(b))
		got, err := unmarshalEnvelope(newEnvelope(scanOK(t, b)), b, agentv2.ProxyToAgentFrameRequestHeaders, true)
		require.NoError(t, err, name)
		require.True(t, proto.Equal(want, got), "%s:\nwant %v\n got %v", name, want, got)
		releaseEnvelope(got)
	}
}

// TestDecodeRequestHeadersAfterGeneratedDecode: header structs the
// generated decoder filled with unknown fields, once released, are reused
// by the direct path without those fields showing.
func TestDecodeRequestHeadersAfterGeneratedDecode(t *testing.T) {
	t.Parallel()
	rh := headersEvent20(4)
	for _, h := range rh.GetRequestHeaders().Headers {
		h.ProtoReflect().SetUnknown([]byte{0x18, 0x05})
	}
	odd, err := proto.Marshal(rh)
	require.NoError(t, err)
	plain, err := proto.Marshal(headersEvent20(5))
	require.NoError(t, err)
	old, err := unmarshalEnvelope(newEnvelope(scanOK(t, odd)), odd, agentv2.ProxyToAgentFrameRequestHeaders, true)
	require.NoError(t, err)
	require.True(t, hasUnknownFields(old.GetRequestHeaders().Headers[0]), "the generated decoder kept the unknown fields")
	require.Equal(t, fieldRequestHeaders, clearShape(old))
	assertCleared(t, old, fieldRequestHeaders)
	field, meta := scanOK(t, plain)
	got, err := unmarshalEnvelope(fillShape(old, field, meta), plain, agentv2.ProxyToAgentFrameRequestHeaders, true)
	require.NoError(t, err)
	want := new(agentv2.ProxyToAgent)
	require.NoError(t, want.UnmarshalVT(plain))
	require.True(t, proto.Equal(want, got), "want %v\n got %v", want, got)
}

// FuzzDecodeRequestHeaders: on any input, decoding into a recycled
// request-headers envelope gives what the generated decoder gives, error or
// message.
func FuzzDecodeRequestHeaders(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		b, err := proto.Marshal(hotEvent(r, fieldRequestHeaders, i%2 == 0))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b, _ := proto.Marshal(headersEvent20(9))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		want := new(agentv2.ProxyToAgent)
		wantErr := want.UnmarshalVT(b)
		if wantErr == nil && want.FrameType() != agentv2.ProxyToAgentFrameRequestHeaders {
			wantErr = fmt.Errorf("frame type %v", want.FrameType())
		}
		field, meta, ok := scanEnvelope(b)
		if !ok || field != fieldRequestHeaders {
			return // not a request-headers envelope: decoded elsewhere
		}
		// A recycled envelope that held a full event first.
		full, _ := proto.Marshal(headersEvent20(1))
		old, err := unmarshalEnvelope(newEnvelope(scanOK(t, full)), full, agentv2.ProxyToAgentFrameRequestHeaders, true)
		require.NoError(t, err)
		clearShape(old)
		got, err := unmarshalEnvelope(fillShape(old, field, meta), b, agentv2.ProxyToAgentFrameRequestHeaders, true)
		if wantErr != nil {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.True(t, proto.Equal(want, got), "%x\nwant %v\n got %v", b, want, got)
		releaseEnvelope(got)
	})
}
