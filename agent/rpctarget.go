package agent

import (
	"google.golang.org/grpc/mem"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

// What gRPC and Connect streams receive into and send from: the codec
// leaves decoding to an rpcTarget and encoding to a sendTarget, which
// recycle memory the generic rules would allocate per message.

var (
	_ wire.Target          = (*rpcTarget)(nil)
	_ wire.BufferMarshaler = (*sendTarget)(nil)
)

// rpcTarget decodes into a recycled envelope whose strings and bytes live
// in the target's slab, and points the embedded message at it, which
// interceptors and other codecs see as a proto.Message. Only the stream's
// reader uses it.
type rpcTarget struct {
	*agentv2.ProxyToAgent
	dec eventDecoder
	// spare is the embedded message before a receive, for a codec other
	// than the agent's (JSON, or a server without GRPCServerOptions).
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

// Sizes of the chunks a sendTarget carves: 4 KiB of encoded messages and
// the buffer headers of 64 messages, so that an idle stream pins little.
const (
	sendChunkSize   = 4 << 10
	sendHeaderChunk = 64
)

// sendTarget is what a stream sends from. On gRPC the embedded message is
// encoded into bytes, a buffer header and a one-element buffer slice all
// carved from chunks: a few allocations per chunk instead of three per
// message. grpc-go may write them after SendMsg returned, so chunks are
// never reused. Connect encodes the embedded message as any other. The
// stream serialises sends.
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
