package refenc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/vmihailenco/msgpack/v5"
)

// Encoding is a payload encoding the reference negotiates.
type Encoding uint8

const (
	// JSON is serde_json, the reference's default and fallback.
	JSON Encoding = iota + 1
	// MsgPack is rmp_serde (the reference's "binary-uds" feature).
	MsgPack
)

// Names on the wire (UdsEncoding, rename_all = "lowercase").
const (
	NameJSON    = "json"
	NameMsgPack = "msgpack"
)

// String returns the encoding's wire name.
func (e Encoding) String() string {
	if e == MsgPack {
		return NameMsgPack
	}
	return NameJSON
}

// ParseEncoding reads a wire name; the reference reads a missing one as JSON.
func ParseEncoding(s string) (Encoding, error) {
	switch s {
	case NameJSON, "":
		return JSON, nil
	case NameMsgPack:
		return MsgPack, nil
	}
	return 0, agentwire.Errorf(agentwire.CodeInvalidArgument, "%w: encoding %q", ErrUnknownType, s)
}

var (
	// ErrMalformed: a payload that is not the message its frame type
	// names, in the negotiated encoding (Code Internal).
	ErrMalformed = errors.New("refenc: malformed payload")
	// ErrUnknownType: a frame type or enum value the reference does not
	// define, or a message it has no form for (Code Unimplemented).
	ErrUnknownType = errors.New("refenc: unknown message type")
)

// MaxFrameSize is the reference's limit (MAX_UDS_MESSAGE_SIZE, 16 MiB),
// which it applies to the payload on write and to payload plus type byte
// on read.
const MaxFrameSize = 16 << 20

const headerSize = 5

func malformed(what string, err error) error {
	return agentwire.NewError(agentwire.CodeInternal, fmt.Errorf("%w: %s: %w", ErrMalformed, what, err))
}

func unknown(format string, args ...any) error {
	return agentwire.NewError(agentwire.CodeUnimplemented, fmt.Errorf("%w: "+format, append([]any{ErrUnknownType}, args...)...))
}

// payload is one outgoing message: its frame type, its tree, whether
// JSON keys are sorted (serde_json::Value) and whether it is JSON
// whatever the negotiated encoding (handshakes, pings, cancels).
type payload struct {
	t      agentv2.FrameType
	v      any
	sorted bool
	json   bool
}

// appendFrame frames p in enc; an oversize frame fails with a
// *agentv2.FrameSizeError and leaves dst unchanged.
func appendFrame(dst []byte, enc Encoding, p payload, max int) ([]byte, error) {
	if max <= 0 {
		max = MaxFrameSize
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(p.t))
	if enc == JSON || p.json {
		dst = appendJSON(dst, p.v, p.sorted)
	} else {
		w := sliceWriter{b: dst}
		e := msgpack.GetEncoder()
		e.Reset(&w)
		err := encodeMsgpack(e, p.v)
		msgpack.PutEncoder(e)
		if err != nil {
			return dst[:start], agentwire.NewError(agentwire.CodeInternal, err)
		}
		dst = w.b
	}
	n := len(dst) - start - 4
	if n > max {
		return dst[:start], &agentv2.FrameSizeError{Size: n, Max: max}
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *sliceWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

func (w *sliceWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

// AppendProxyToAgent appends m to dst as one reference frame in enc (the
// handshake in JSON whatever enc is). Messages the reference has no form
// for (drain, shutdown, config responses, registration responses on a
// dialled connection) fail with ErrUnknownType.
func AppendProxyToAgent(dst []byte, enc Encoding, m *agentv2.ProxyToAgent, max int) ([]byte, error) {
	p, err := proxyPayload(m)
	if err != nil {
		return dst, err
	}
	return appendFrame(dst, enc, p, max)
}

// AppendAgentToProxy appends m to dst as one reference frame in enc.
func AppendAgentToProxy(dst []byte, enc Encoding, m *agentv2.AgentToProxy, max int) ([]byte, error) {
	p, err := agentPayload(m)
	if err != nil {
		return dst, err
	}
	return appendFrame(dst, enc, p, max)
}

// DecodeAgentToProxy decodes one frame's payload an agent sent into m
// (reset first). Type 0x02 is the handshake response.
func DecodeAgentToProxy(enc Encoding, t agentv2.FrameType, p []byte, m *agentv2.AgentToProxy) error {
	m.Reset()
	if t == agentv2.AgentToProxyFrameHandshake {
		enc = JSON
	}
	v, err := parse(enc, p)
	if err != nil {
		return malformed(fmt.Sprintf("frame 0x%02x", byte(t)), err)
	}
	return decodeAgent(t, v, m)
}

// DecodeProxyToAgent decodes one frame's payload a proxy sent into m
// (reset first). Type 0x01 is the handshake request.
func DecodeProxyToAgent(enc Encoding, t agentv2.FrameType, p []byte, m *agentv2.ProxyToAgent) error {
	m.Reset()
	if t == agentv2.ProxyToAgentFrameHandshake {
		enc = JSON
	}
	v, err := parse(enc, p)
	if err != nil {
		return malformed(fmt.Sprintf("frame 0x%02x", byte(t)), err)
	}
	return decodeProxy(t, v, m)
}

// done turns a reader's first error into the package's error.
func done(r *rd, what string) error {
	if r.err != nil {
		return malformed(what, r.err)
	}
	return nil
}
