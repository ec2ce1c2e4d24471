package agent

import (
	"google.golang.org/grpc/mem"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

// What gRPC and Connect streams receive into and send from: the codec
// (wire.GRPCCodec, wire.ConnectCodec) leaves decoding to an rpcTarget and
// encoding to a sendTarget, which recycle memory the generic rules would
// allocate per message.

var (
	_ wire.Target          = (*rpcTarget)(nil)
	_ wire.BufferMarshaler = (*sendTarget)(nil)
)

// rpcTarget is what gRPC and Connect streams receive into. The codecs
// decode into a recycled envelope whose strings and bytes live in the
// target's slab, and point the embedded message at it; the embedding lets
// interceptors, stats handlers and other codecs see a proto.Message. Only
// the stream's reader uses it.
type rpcTarget struct {
	*agentv2.ProxyToAgent
	dec eventDecoder
	// spare is the embedded message before a receive: a codec other than
	// the agent's (the client chose JSON, or the server was built without
	// GRPCServerOptions) decodes into it.
	spare *agentv2.ProxyToAgent
}

// UnmarshalWire decodes b, which the codec reuses afterwards.
func (t *rpcTarget) UnmarshalWire(b []byte) error {
	m, err := t.dec.decode(b)
	if err != nil {
		return err
	}
	t.ProxyToAgent = m
	return nil
}

// prepare readies t for a receive.
func (t *rpcTarget) prepare() {
	if t.spare == nil {
		t.spare = new(agentv2.ProxyToAgent)
	}
	t.ProxyToAgent = t.spare
}

// take returns the received message after a successful receive.
func (t *rpcTarget) take() *agentv2.ProxyToAgent {
	m := t.ProxyToAgent
	if m == t.spare {
		t.spare = nil
	}
	t.ProxyToAgent = nil
	return m
}

// Sizes of the chunks a sendTarget carves: 4 KiB of encoded messages (some
// sixty decisions) and the buffer headers of 64 messages, so that an idle
// stream pins little.
const (
	sendChunkSize   = 4 << 10
	sendHeaderChunk = 64
)

// sendTarget is what a gRPC stream sends from. The codec encodes the
// embedded message into bytes carved from the target's slab, and carves
// the buffer header and the one-element buffer slice grpc-go takes from
// chunks too: instead of three allocations per message, a few per chunk.
// grpc-go may write the bytes after SendMsg returned: chunks are never
// reused, the garbage collector frees them. The embedding lets
// interceptors, stats handlers and other codecs see a proto.Message. The
// stream serialises sends, so one goroutine at a time uses a target.
type sendTarget struct {
	*agentv2.AgentToProxy
	data slab
	hdrs []mem.SliceBuffer
	bufs []mem.Buffer
}

func newSendTarget() sendTarget { return sendTarget{data: slab{max: sendChunkSize}} }

// MarshalBuffers encodes the embedded message.
func (t *sendTarget) MarshalBuffers() (mem.BufferSlice, error) {
	size := t.SizeVT()
	buf := t.data.alloc(size)
	if _, err := t.MarshalToSizedBufferVT(buf); err != nil {
		return nil, err
	}
	if len(t.hdrs) == 0 {
		t.hdrs = make([]mem.SliceBuffer, sendHeaderChunk)
	}
	if len(t.bufs) == 0 {
		t.bufs = make([]mem.Buffer, sendHeaderChunk)
	}
	h := &t.hdrs[0]
	*h = buf
	t.hdrs = t.hdrs[1:]
	t.bufs[0] = h
	bs := t.bufs[:1:1]
	t.bufs = t.bufs[1:]
	return bs, nil
}
