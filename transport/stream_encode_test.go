package transport

import (
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStreamEncode: messages smaller and larger than the smallest pooled
// buffer encode to what the generated marshaller gives, also into buffers
// back from the pool (the second round); the limit holds for each.
func TestStreamEncode(t *testing.T) {
	t.Parallel()
	headers := func(n int) *agentv2.ProxyToAgent {
		var hs []*agentv2.Header
		for i := range n {
			hs = append(hs, &agentv2.Header{Name: "x-h", Value: strings.Repeat("v", i)})
		}
		return &agentv2.ProxyToAgent{EventId: 9, Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
			Metadata: &agentv2.RequestMetadata{CorrelationId: "c1"}, Method: "GET", Headers: hs}}}
	}
	body := func(n int) *agentv2.ProxyToAgent {
		return &agentv2.ProxyToAgent{EventId: 10, Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
			CorrelationId: "c1", Data: []byte(strings.Repeat("d", n))}}}
	}
	w := &streamWire{max: 1 << 20}
	for round := range 2 {
		for _, m := range []*agentv2.ProxyToAgent{headers(3), body(10), headers(80), body(1500), body(3000), body(100 << 10), headers(2), body(20)} {
			want, err := m.MarshalVT()
			require.NoError(t, err)
			bp, err := w.encode(m)
			require.NoError(t, err)
			assert.Equal(t, want, []byte(*bp), "round %d, %d bytes", round, len(want))
			bp.free()
		}
	}
	small := &streamWire{max: 100}
	for _, m := range []*agentv2.ProxyToAgent{body(200), body(5000), body(200)} {
		_, err := small.encode(m)
		assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(err))
		assert.ErrorIs(t, err, codec.ErrFrameTooLarge)
	}
}
