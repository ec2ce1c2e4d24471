package wire

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// A frame's size is written before its envelope, so codec.AppendFrame
// computes the envelope's size first (SizeVT), a walk over every field as
// long as the encoding itself for a request with many headers.
// vtprotobuf's marshaller writes back to front, though: given a buffer
// larger than needed, it puts the encoding at the buffer's end and reports
// its length, and the frame header then goes right before it. The
// FrameWriter encodes that way into its scratch buffers. A buffer too small
// makes the marshaller index out of range, a panic that is recovered; the
// frame is then encoded the ordinary way, and the FrameWriter remembers the
// size so that frames of that type skip the attempt until a scratch buffer
// is large enough.

// tailFrame is an envelope that can be encoded at the end of a buffer:
// both generated envelopes are.
type tailFrame interface {
	codec.Frame
	FrameType() agentv2.FrameType
	MarshalToSizedBufferVT([]byte) (int, error)
}

// frameSizes holds the largest payload of each frame type a FrameWriter has
// encoded, by type modulo its length: the few types that share a slot
// share their largest size.
type frameSizes [64]atomic.Int32

// note records a payload of n bytes of type t.
func (s *frameSizes) note(t agentv2.FrameType, n int) {
	v := &s[int(t)%len(s)]
	for {
		old := v.Load()
		if int32(n) <= old || v.CompareAndSwap(old, int32(n)) {
			return
		}
	}
}

// encodeTail encodes m as one frame at the end of buf's capacity and
// returns it (a subslice of buf), or ok false when m is not a tailFrame or
// does not fit, leaving it to codec.AppendFrame. An error is final: m has no
// case set or exceeds max.
func (s *frameSizes) encodeTail(buf []byte, m codec.Frame, max int) (frame []byte, ok bool, err error) {
	tm, isTail := m.(tailFrame)
	if !isTail {
		return nil, false, nil
	}
	t := tm.FrameType()
	room := cap(buf) - agentv2.FrameHeaderSize
	if t == 0 || room <= 0 || int(s[int(t)%len(s)].Load()) > room {
		return nil, false, nil
	}
	buf = buf[:cap(buf)]
	n, fits, err := marshalTail(tm, buf[agentv2.FrameHeaderSize:])
	if !fits {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, agentwire.NewError(agentwire.CodeInvalidArgument, err)
	}
	if n+1 > max {
		return nil, false, agentwire.NewError(agentwire.CodeResourceExhausted,
			fmt.Errorf("%w: %w", codec.ErrFrameTooLarge, &agentv2.FrameSizeError{Size: n + 1, Max: max}))
	}
	s.note(t, n)
	start := len(buf) - n - agentv2.FrameHeaderSize
	binary.BigEndian.PutUint32(buf[start:], uint32(n+1))
	buf[start+4] = byte(t)
	return buf[start:], true, nil
}

// marshalTail marshals m at the end of dst; fits is false when dst was
// too small.
func marshalTail(m tailFrame, dst []byte) (n int, fits bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(runtime.Error); !ok {
				panic(r)
			}
			n, fits, err = 0, false, nil
		}
	}()
	n, err = m.MarshalToSizedBufferVT(dst)
	return n, true, err
}
