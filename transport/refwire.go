package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	iwire "github.com/agentwire/agentwire/internal/wire"
	"github.com/agentwire/agentwire/internal/wire/refenc"
)

// refWire is the wire to a reference agent (Zentinel's uds_server.rs, or
// its reverse.rs client): the framing of framedWire with JSON or
// MessagePack payloads. It translates each frame to and from the
// envelopes the session handles, so matching, cancel, flow control and
// liveness apply unchanged. Reference agents do not echo event ids: the
// session matches their answers by correlation id, which refenc reads
// from audit.custom.
type refWire struct {
	*iwire.Framed
	transport string
	// offer is what the handshake proposes, in order of preference.
	offer []string
	// enc is the negotiated encoding (refenc.Encoding), JSON until then.
	enc atomic.Uint32
	// synth, if set, answers the handshake in place of the agent: a
	// reverse agent's registration already said what a handshake would.
	synth *agentv2.HandshakeResponse
}

var _ wire = (*refWire)(nil)

func newRefWire(nc net.Conn, cfg *config, transport string, offer []string) *refWire {
	max := cfg.maxFrameSize
	if max <= 0 {
		max = refenc.MaxFrameSize
	}
	w := &refWire{Framed: iwire.NewFramed(nc, nc, max, cfg.maxPending), transport: transport, offer: offer}
	w.enc.Store(uint32(refenc.JSON))
	return w
}

// refFrame is one envelope on its way out in the negotiated encoding.
type refFrame struct {
	m   *agentv2.ProxyToAgent
	enc refenc.Encoding
}

func (f refFrame) AppendFrame(dst []byte, max int) ([]byte, error) {
	return refenc.AppendProxyToAgent(dst, f.enc, f.m, max)
}

func (w *refWire) frame(m *agentv2.ProxyToAgent) refFrame {
	if hs := m.GetHandshake(); hs != nil {
		hs = &agentv2.HandshakeRequest{
			SupportedVersions: hs.GetSupportedVersions(), ProxyId: hs.GetProxyId(),
			ProxyVersion: hs.GetProxyVersion(), ConfigJson: hs.GetConfigJson(), SupportedEncodings: w.offer,
		}
		m = &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Handshake{Handshake: hs}}
	}
	return refFrame{m: m, enc: refenc.Encoding(w.enc.Load())}
}

func (w *refWire) send(ctx context.Context, m *agentv2.ProxyToAgent) error {
	if w.synth != nil && m.GetHandshake() != nil {
		return nil
	}
	return w.Write(ctx, w.frame(m))
}

func (w *refWire) sendBatched(ctx context.Context, m *agentv2.ProxyToAgent) error {
	return w.WriteBatched(ctx, w.frame(m))
}

// recv reads and translates the next frame. A frame type the reference
// does not send is skipped (codec.ErrUnknownFrameType); a payload that is
// not its message fails the connection, so every call on it fails and
// none is answered by a guess.
func (w *refWire) recv(m *agentv2.AgentToProxy) error {
	if hs := w.synth; hs != nil {
		w.synth = nil
		m.Reset()
		m.Message = &agentv2.AgentToProxy_Handshake{Handshake: hs}
		return nil
	}
	t, p, err := w.R.ReadFrame()
	if err != nil {
		return err
	}
	err = refenc.DecodeAgentToProxy(refenc.Encoding(w.enc.Load()), t, p, m)
	if errors.Is(err, refenc.ErrUnknownType) {
		return agentwire.NewError(agentwire.CodeUnimplemented, fmt.Errorf("%w: %w", codec.ErrUnknownFrameType, err))
	}
	if err != nil {
		return agentwire.Errorf(agentwire.CodeInternal, "%w: %w", ErrProtocol, err)
	}
	if hs := m.GetHandshake(); hs != nil {
		return w.negotiated(hs)
	}
	return nil
}

// negotiated switches to the encoding the agent chose if it was offered,
// and then hides it from the session, which knows only protobuf; one not
// offered stays visible, and the session refuses it.
func (w *refWire) negotiated(hs *agentv2.HandshakeResponse) error {
	enc, err := refenc.ParseEncoding(hs.GetEncoding())
	if err == nil && slices.Contains(w.offer, enc.String()) {
		w.enc.Store(uint32(enc))
		hs.Encoding = ""
	}
	return nil
}

func (w *refWire) run(ctx context.Context) error { return w.Run(ctx) }

func (w *refWire) holdBatch() { w.Hold() }

func (w *refWire) releaseBatch() { w.Release() }

func (w *refWire) gathering() bool { return w.Held() }

func (w *refWire) buffered() bool { return w.R.FrameBuffered() }

func (w *refWire) flush(ctx context.Context) error { return w.Flush(ctx) }

func (w *refWire) close() error { return w.Close() }

func (w *refWire) name() string { return w.transport }

// refRegistrationFrame is the type of the reference's registration, its
// handshake request frame sent the other way.
const refRegistrationFrame = agentv2.ProxyToAgentFrameHandshake

// newRefReverseConn runs the session over a reference agent's reverse
// connection: JSON throughout (reverse.rs negotiates nothing), and the
// handshake answered from the registration, as the reference sends none.
func newRefReverseConn(ctx context.Context, nc net.Conn, reg *agentv2.RegistrationRequest, opts []Option) (Conn, error) {
	cfg := newConfig(opts)
	w := newRefWire(nc, cfg, TransportReverse, []string{refenc.NameJSON})
	w.synth = &agentv2.HandshakeResponse{
		ProtocolVersion: reg.GetProtocolVersion(), Capabilities: reg.GetCapabilities(), Success: true,
	}
	return startSession(ctx, cfg, w)
}

// EncodingOf names the payload encoding c speaks: "protobuf", or the
// reference's "json" or "msgpack"; "" for a Conn this package did not make.
func EncodingOf(c Conn) string {
	s, ok := c.(*session)
	if !ok {
		return ""
	}
	if w, ok := s.w.(*refWire); ok {
		return refenc.Encoding(w.enc.Load()).String()
	}
	return string(UnixProtobuf)
}
