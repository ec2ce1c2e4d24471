package wire

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

func body(n int) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{EventId: 10, Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: "c1", Data: []byte(strings.Repeat("d", n))}}}
}

// TestMarshal: messages of every size class and beyond encode as the
// generated marshaller does, also into buffers back from the pool; the
// limit fails a message before it is encoded.
func TestMarshal(t *testing.T) {
	t.Parallel()
	for range 2 {
		for _, n := range []int{0, 10, 1500, 3000, 100 << 10} {
			m := body(n)
			want, err := m.MarshalVT()
			require.NoError(t, err)
			bp, err := Marshal(m, 1<<20)
			require.NoError(t, err)
			assert.Equal(t, want, *bp)
			Buffers.Put(bp)
			out, err := AppendMarshal([]byte("x"), m)
			require.NoError(t, err)
			assert.Equal(t, append([]byte("x"), want...), out)
		}
	}
	_, err := Marshal(body(200), 100)
	assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(err))
	assert.ErrorIs(t, err, codec.ErrFrameTooLarge)
}
