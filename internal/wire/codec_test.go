package wire

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// adapters runs a test over both codecs, seen as bytes in, bytes out; the
// gRPC one also with the message split over two buffers.
var adapters = map[string]struct {
	marshal   func(any) ([]byte, error)
	unmarshal func([]byte, any) error
}{
	"grpc": {
		marshal: func(v any) ([]byte, error) {
			bs, err := GRPCCodec{}.Marshal(v)
			return bs.Materialize(), err
		},
		unmarshal: func(b []byte, v any) error { return GRPCCodec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, v) },
	},
	"grpc split": {
		marshal: func(v any) ([]byte, error) {
			bs, err := GRPCCodec{}.Marshal(v)
			return bs.Materialize(), err
		},
		unmarshal: func(b []byte, v any) error {
			k := min(3, len(b))
			return GRPCCodec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b[:k]), mem.SliceBuffer(b[k:])}, v)
		},
	},
	"connect": {
		marshal:   ConnectCodec{}.Marshal,
		unmarshal: ConnectCodec{}.Unmarshal,
	},
}

func event() *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{EventId: 5, Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: "c-1", Data: []byte("body"), IsLast: true,
	}}}
}

// reply is a block decision with a body.
func reply() *agentv2.AgentToProxy {
	body := "no"
	return &agentv2.AgentToProxy{EventId: 5, Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{
		CorrelationId: "c-1",
		Decision:      &agentv2.AgentResponse_Block{Block: &agentv2.BlockDecision{Status: 403, Body: &body}},
	}}}
}

// TestCodecRules: vtprotobuf messages and other protobuf messages encode
// as proto.Marshal does and decode into a message that replaces what it
// held and shares nothing with the input; anything else fails.
func TestCodecRules(t *testing.T) {
	t.Parallel()
	for name, c := range adapters {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct{ in, out proto.Message }{
				{event(), &agentv2.ProxyToAgent{EventId: 99, Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: 1}}}},
				{reply(), &agentv2.AgentToProxy{EventId: 99, Message: &agentv2.AgentToProxy_Pong{}}},
				{&healthpb.HealthCheckRequest{Service: "svc"}, &healthpb.HealthCheckRequest{Service: "stale"}},
			} {
				b, err := c.marshal(tc.in)
				require.NoError(t, err)
				want, err := proto.Marshal(tc.in)
				require.NoError(t, err)
				assert.Equal(t, want, b, "%T", tc.in)
				require.NoError(t, c.unmarshal(b, tc.out))
				assert.True(t, proto.Equal(tc.in, tc.out), "%T: got %v", tc.in, tc.out)
				clear(b)
				assert.True(t, proto.Equal(tc.in, tc.out), "%T changed with its input buffer", tc.in)
			}
			_, err := c.marshal(42)
			assert.ErrorContains(t, err, "cannot marshal int")
			assert.ErrorContains(t, c.unmarshal(nil, new(int)), "cannot unmarshal into *int")
			assert.Error(t, c.unmarshal([]byte{0x12, 0x05}, new(agentv2.ProxyToAgent)), "truncated")
		})
	}
}

// TestCodecClipsBytes: an event decoded in place has its bytes fields
// clipped, so that appending to one cannot overwrite what follows it.
func TestCodecClipsBytes(t *testing.T) {
	t.Parallel()
	in := event()
	in.GetRequestBodyChunk().CorrelationId = "after-the-data"
	b, err := proto.Marshal(in)
	require.NoError(t, err)
	for name, c := range adapters {
		var out agentv2.ProxyToAgent
		require.NoError(t, c.unmarshal(b, &out), name)
		data := out.GetRequestBodyChunk().Data
		assert.Equal(t, len(data), cap(data), name)
	}
}

// selfCoded encodes and decodes itself, as the proxy's pre-encoded events
// and both sides' receive targets do.
type selfCoded struct {
	enc []byte
	got []byte
}

func (s *selfCoded) MarshalBuffers() (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(s.enc)}, nil
}

func (s *selfCoded) AppendWire(dst []byte) ([]byte, error) { return append(dst, s.enc...), nil }

func (s *selfCoded) UnmarshalWire(b []byte) error {
	if len(b) == 0 {
		return errors.New("empty")
	}
	s.got = append(s.got[:0], b...)
	return nil
}

// TestCodecHooks: a value that encodes itself does, a Target decodes
// itself, on both codecs; Connect's result is the buffer it gave.
func TestCodecHooks(t *testing.T) {
	t.Parallel()
	for name, c := range adapters {
		s := &selfCoded{enc: []byte("pre-encoded")}
		b, err := c.marshal(s)
		require.NoError(t, err, name)
		assert.Equal(t, "pre-encoded", string(b), name)
		require.NoError(t, c.unmarshal([]byte("received"), s), name)
		assert.Equal(t, "received", string(s.got), name)
		assert.EqualError(t, c.unmarshal(nil, s), "empty", name)
	}
	dst := make([]byte, 2, 64)
	out, err := ConnectCodec{}.MarshalAppend(dst, &selfCoded{enc: []byte("x")})
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 0, 'x'}, out)
	assert.Same(t, &dst[0], &out[0], "appended to connect-go's buffer")
}
