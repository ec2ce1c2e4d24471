package wire

import (
	"fmt"
	"slices"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
)

// The generated marshaller (MarshalToSizedBufferVT) writes back to front
// from the end of the buffer it is given and indexes out of range on one
// too small, so a message is always sized (SizeVT) before it is encoded:
// nothing guesses and recovers. The FrameWriter does the same through
// codec.AppendFrame (the generated AppendFrame sizes first).

// Marshal encodes m into a buffer from [Buffers]. A message over max bytes
// (max > 0) fails before it is encoded, with codec.ErrFrameTooLarge
// (ResourceExhausted); one the generated code refuses, with
// InvalidArgument.
func Marshal(m Message, max int) (*[]byte, error) {
	n := m.SizeVT()
	if max > 0 && n > max {
		return nil, agentwire.NewError(agentwire.CodeResourceExhausted,
			fmt.Errorf("%w: message of %d bytes, limit %d", codec.ErrFrameTooLarge, n, max))
	}
	bp := Buffers.Get(n)
	if _, err := m.MarshalToSizedBufferVT(*bp); err != nil {
		Buffers.Put(bp)
		return nil, agentwire.NewError(agentwire.CodeInvalidArgument, err)
	}
	return bp, nil
}

// AppendMarshal appends m's encoding to dst, sized first as in [Marshal].
func AppendMarshal(dst []byte, m Message) ([]byte, error) {
	n := m.SizeVT()
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	if _, err := m.MarshalToSizedBufferVT(dst[start:]); err != nil {
		return dst[:start], agentwire.NewError(agentwire.CodeInvalidArgument, err)
	}
	return dst, nil
}
