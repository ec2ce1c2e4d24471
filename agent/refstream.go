package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire/refenc"
)

// The reference (Sentinel/Zentinel) Unix-socket protocol shares our framing
// but carries a JSON handshake and JSON or MessagePack payloads (uds.rs).
// A framed connection whose first frame is a handshake whose payload opens
// with '{' speaks it; a protobuf envelope never starts with that byte (it
// would be field 15, a group). refState translates its frames to and from
// our messages with refenc, so the session, its handlers, cancellation and
// decision rules are the same for both.
type refState struct {
	// enc is the negotiated encoding: set during the handshake, before the
	// session's goroutines start, and only read afterwards.
	enc refenc.Encoding
	// reverse: a reference reverse connection (JSON registration), which
	// has no handshake on the wire; hs is the one the session is given.
	reverse bool
	hs      *agentv2.ProxyToAgent

	mu sync.Mutex // guards the following
	// acks maps the event id given to a configure event (ours carries no
	// correlation id) to the reference correlation id its answer needs.
	acks   map[uint64]string
	lastID uint64
}

// ack numbers configure event m and remembers the correlation id of its
// payload for the answer.
func (r *refState) ack(m *agentv2.ProxyToAgent, payload []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acks == nil {
		r.acks = make(map[uint64]string)
	}
	r.lastID++
	m.EventId = r.lastID
	r.acks[m.EventId] = refCorrelationID(r.enc, payload)
}

// answer returns m, or for the answer to a configure event a copy naming
// the correlation id the proxy sent it with.
func (r *refState) answer(m *agentv2.AgentToProxy) *agentv2.AgentToProxy {
	if m.GetEventId() == 0 || m.GetResponse() == nil {
		return m
	}
	r.mu.Lock()
	id, ok := r.acks[m.GetEventId()]
	delete(r.acks, m.GetEventId())
	r.mu.Unlock()
	if !ok {
		return m
	}
	c := proto.Clone(m).(*agentv2.AgentToProxy)
	c.GetResponse().CorrelationId = id
	return c
}

// isRefHandshake tells the reference's JSON handshake from ours.
func isRefHandshake(t agentv2.FrameType, payload []byte) bool {
	return t == agentv2.ProxyToAgentFrameHandshake && len(payload) > 0 && payload[0] == '{'
}

// newReverseRef is the state of a connection registered with a reference
// proxy: JSON throughout, and a handshake made up for the session.
func newReverseRef(proxyID string) *refState {
	return &refState{enc: refenc.JSON, reverse: true, hs: &agentv2.ProxyToAgent{
		Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{
			SupportedVersions:  []uint32{ProtocolVersion},
			ProxyId:            proxyID,
			SupportedEncodings: []string{refenc.NameJSON},
		}},
	}}
}

// startRef switches f to the reference protocol on its first frame, the
// JSON handshake in payload, and returns that handshake.
func (f *framedStream) startRef(payload []byte) (*agentv2.ProxyToAgent, error) {
	f.ref = &refState{enc: refenc.JSON}
	f.tee.borrow = true // reference events are decoded into fresh memory
	f.tee.idle()
	m := &agentv2.ProxyToAgent{}
	if err := refenc.DecodeProxyToAgent(refenc.JSON, agentv2.ProxyToAgentFrameHandshake, payload, m); err != nil {
		return nil, protocolError("reference handshake: %w", err)
	}
	return m, nil
}

// recvRef reads the next reference frame. A frame type the reference does
// not define is skipped like an unknown frame; a malformed payload is
// answered, when it names its request, with an error response (which the
// reference sees as a block with status 500) and does not end the session.
func (f *framedStream) recvRef() (*agentv2.ProxyToAgent, error) {
	if hs := f.ref.hs; hs != nil {
		f.ref.hs = nil
		return hs, nil
	}
	for {
		t, payload, err := f.R.ReadFrame()
		if err != nil {
			if f.aborted.Load() {
				return nil, errConnClosed
			}
			return nil, err
		}
		m := &agentv2.ProxyToAgent{}
		err = refenc.DecodeProxyToAgent(f.ref.enc, t, payload, m)
		switch {
		case err == nil:
			if t == agentv2.ProxyToAgentFrameConfigure {
				f.ref.ack(m, payload)
			}
			return m, nil
		case errors.Is(err, refenc.ErrUnknownType):
			return nil, fmt.Errorf("%w: %w", codec.ErrUnknownFrameType, err)
		}
		if err := f.rejectMalformed(t, payload, err); err != nil {
			return nil, err
		}
	}
}

// rejectMalformed answers a malformed frame's request with cause, if the
// payload names one; a frame that names none can only be dropped.
func (f *framedStream) rejectMalformed(t agentv2.FrameType, payload []byte, cause error) error {
	id := refCorrelationID(f.ref.enc, payload)
	isEvent := t >= agentv2.ProxyToAgentFrameRequestHeaders && t <= agentv2.ProxyToAgentFrameConfigure
	if id == "" || !isEvent {
		return nil
	}
	code := agentwire.CodeOf(cause)
	if code == agentwire.CodeUnknown {
		code = agentwire.CodeInvalidArgument
	}
	m := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{
		CorrelationId: id,
		Error:         &agentv2.Status{Code: uint32(code), Message: fmt.Sprintf("agent: frame 0x%02x: %v", uint8(t), cause)},
	}}}
	err := f.Write(context.Background(), refFrame{f.ref, m})
	if f.aborted.Load() {
		return errConnClosed
	}
	return err
}

// refCorrelationID finds the correlation id in a payload that failed to
// decode, as uds_server.rs's extract_correlation_id does: the top-level
// correlation_id, else metadata's (a map, or a positional array).
func refCorrelationID(enc refenc.Encoding, payload []byte) string {
	var v any
	if enc == refenc.JSON || (len(payload) > 0 && payload[0] == '{') {
		if json.Unmarshal(payload, &v) != nil {
			return ""
		}
	} else if msgpack.NewDecoder(bytes.NewReader(payload)).Decode(&v) != nil {
		return ""
	}
	top, _ := v.(map[string]any)
	if id, _ := top["correlation_id"].(string); id != "" {
		return id
	}
	switch md := top["metadata"].(type) {
	case map[string]any:
		id, _ := md["correlation_id"].(string)
		return id
	case []any:
		if len(md) > 0 {
			id, _ := md[0].(string)
			return id
		}
	}
	return ""
}

// negotiate picks the session's encoding from the proxy's offer: for the
// reference, the first of msgpack and json offered, else JSON (as
// uds_server.rs); for our protocol, protobuf, if offered or nothing is.
func (f *framedStream) negotiate(offered []string) (string, bool) {
	if f.ref == nil {
		return protobufEncoding(offered)
	}
	for _, name := range offered {
		if enc, err := refenc.ParseEncoding(name); err == nil && name != "" {
			f.ref.enc = enc
			return name, true
		}
	}
	f.ref.enc = refenc.JSON
	return refenc.NameJSON, true
}

// protobufEncoding is the negotiation of agentwire's own protocol.
func protobufEncoding(offered []string) (string, bool) {
	return "protobuf", len(offered) == 0 || slices.Contains(offered, "protobuf")
}

// out is what the writer encodes for m: m itself, or its reference form.
func (f *framedStream) out(m *agentv2.AgentToProxy) codec.Frame {
	if f.ref == nil {
		return m
	}
	return refFrame{f.ref, f.ref.answer(m)}
}

// refFrame encodes an agent message as a reference frame. Messages the
// reference has no form for (logs, registration), and the handshake
// answer on a reverse connection, are written as nothing.
type refFrame struct {
	ref *refState
	m   *agentv2.AgentToProxy
}

func (r refFrame) AppendFrame(dst []byte, max int) ([]byte, error) {
	if r.ref.reverse && r.m.GetHandshake() != nil {
		return dst, nil
	}
	out, err := refenc.AppendAgentToProxy(dst, r.ref.enc, r.m, max)
	if errors.Is(err, refenc.ErrUnknownType) {
		return dst, nil
	}
	return out, err
}
