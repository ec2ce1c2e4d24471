package agent

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

func TestCodecs(t *testing.T) {
	t.Parallel()
	event := &agentv2.ProxyToAgent{EventId: 5, Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: "c-1", Data: []byte("body"), IsLast: true,
	}}}
	reply := newReply(5, "c-1", Block(403, "no"), nil)
	other := &healthpb.HealthCheckRequest{Service: "svc"}
	type codec struct {
		marshal   func(any) ([]byte, error)
		unmarshal func([]byte, any) error
	}
	codecs := map[string]codec{
		"grpc": {
			marshal: func(v any) ([]byte, error) {
				bs, err := wire.GRPCCodec{}.Marshal(v)
				return bs.Materialize(), err
			},
			unmarshal: func(b []byte, v any) error { return wire.GRPCCodec{}.Unmarshal(memSlice(b), v) },
		},
		"connect": {marshal: wire.ConnectCodec{}.Marshal, unmarshal: wire.ConnectCodec{}.Unmarshal},
	}
	for name, c := range codecs {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				in, out proto.Message
			}{
				{event, &agentv2.ProxyToAgent{EventId: 99, Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: 1}}}},
				{reply, &agentv2.AgentToProxy{EventId: 99}},
				{other, &healthpb.HealthCheckRequest{Service: "stale"}},
			} {
				b, err := c.marshal(tc.in)
				require.NoError(t, err)
				want, err := proto.Marshal(tc.in)
				require.NoError(t, err)
				assert.Equal(t, want, b, "%T encodes as the standard codec does", tc.in)
				// Decoding replaces what the message held.
				require.NoError(t, c.unmarshal(b, tc.out))
				assert.True(t, proto.Equal(tc.in, tc.out), "%T: got %v", tc.in, tc.out)
				clear(b) // the decoded message must not share the caller's buffer
				assert.True(t, proto.Equal(tc.in, tc.out), "%T changed with its input buffer", tc.in)
			}
			_, err := c.marshal(42)
			assert.Error(t, err)
		})
	}
}

func memSlice(b []byte) mem.BufferSlice { return mem.BufferSlice{mem.SliceBuffer(b)} }
