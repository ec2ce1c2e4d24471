package transport

import (
	"context"
	"net"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	iwire "github.com/agentwire/agentwire/internal/wire"
)

// framedWire carries envelopes as codec frames over a byte stream. It is the
// wire of the Unix-socket transport and of reverse connections.
type framedWire struct {
	*iwire.Framed
	transport string
}

var _ wire = (*framedWire)(nil)

func newFramedWire(nc net.Conn, cfg *config, transport string) *framedWire {
	return &framedWire{Framed: iwire.NewFramed(nc, nc, cfg.maxFrameSize, cfg.maxPending), transport: transport}
}

func (f *framedWire) send(ctx context.Context, m *agentv2.ProxyToAgent) error {
	return f.Write(ctx, m)
}

func (f *framedWire) sendBatched(ctx context.Context, m *agentv2.ProxyToAgent) error {
	return f.WriteBatched(ctx, m)
}

// recv decodes the next frame from a private copy of its payload, without
// copying each string and bytes field: they alias the copy, which nothing
// else writes, so m and everything handed out of it (responses belong to
// the callers of Send) stay valid after the next read. One allocation
// replaces one per field; common responses take one allocation in all
// (decodeResponse).
func (f *framedWire) recv(m *agentv2.AgentToProxy) error {
	t, payload, err := f.R.ReadFrame()
	if err != nil {
		return err
	}
	if t == agentv2.AgentToProxyFrameResponse && decodeResponse(m, payload) {
		return nil
	}
	// No protobuf handshake response starts with '{' (field 15, a group).
	if t == agentv2.AgentToProxyFrameHandshake && len(payload) > 0 && payload[0] == '{' {
		return agentwire.NewError(agentwire.CodeUnimplemented, errJSONHandshake)
	}
	if agentv2.IsAgentToProxyFrame(t) {
		payload = append([]byte(nil), payload...)
	}
	return codec.Decode(m, t, payload, agentv2.IsAgentToProxyFrame, true)
}

func (f *framedWire) run(ctx context.Context) error { return f.Run(ctx) }

func (f *framedWire) holdBatch() { f.Hold() }

func (f *framedWire) releaseBatch() { f.Release() }

func (f *framedWire) gathering() bool { return f.Held() }

func (f *framedWire) buffered() bool { return f.R.FrameBuffered() }

func (f *framedWire) flush(ctx context.Context) error { return f.Flush(ctx) }

func (f *framedWire) close() error { return f.Close() }

func (f *framedWire) name() string { return f.transport }

// NewFramedConn runs the proxy side of the framed protocol over an
// established byte stream: it sends the handshake, waits for the agent's
// answer, and returns a Conn. The reverse-connection listener uses it after
// registration; transport names the connection in logs and metrics.
func NewFramedConn(ctx context.Context, nc net.Conn, transport string, opts ...Option) (Conn, error) {
	cfg := newConfig(opts)
	return startSession(ctx, cfg, newFramedWire(nc, cfg, transport))
}

func startSession(ctx context.Context, cfg *config, w wire) (Conn, error) {
	if cfg.handshakeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.handshakeTimeout)
		defer cancel()
	}
	s := newSession(cfg, w)
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}
