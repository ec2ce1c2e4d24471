package codec

import (
	"errors"
	"io"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// DefaultMaxPending is how many encoded bytes a frame writer queues before
// writers wait for the peer to read: a stalled peer costs bounded memory.
const DefaultMaxPending = 4 << 20

// Frame is an envelope that encodes itself as one frame; both generated
// envelopes, ProxyToAgent and AgentToProxy, implement it.
type Frame interface {
	AppendFrame(dst []byte, max int) ([]byte, error)
}

// AppendFrame appends m to dst as one frame, failing with
// [ErrFrameTooLarge] (and dst unchanged) if it exceeds max bytes.
func AppendFrame(dst []byte, m Frame, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	out, err := m.AppendFrame(dst, max)
	if err != nil {
		var size *agentv2.FrameSizeError
		if errors.As(err, &size) {
			return dst, wrap(agentwire.CodeResourceExhausted, ErrFrameTooLarge, err)
		}
		return dst, agentwire.NewError(agentwire.CodeInvalidArgument, err)
	}
	return out, nil
}

// WriteFrameTo encodes m and writes it to dst at once, for handshakes and
// registration before a frame writer runs.
func WriteFrameTo(dst io.Writer, m Frame, max int) error {
	b, err := AppendFrame(nil, m, max)
	if err != nil {
		return err
	}
	if _, err := dst.Write(b); err != nil {
		return agentwire.NewError(agentwire.CodeUnavailable, err)
	}
	return nil
}
