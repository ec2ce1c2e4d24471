package codec

import (
	"errors"

	"github.com/agentwire/agentwire"
)

// Sentinel errors, each wrapped in an *agentwire.Error with the code noted.
var (
	// ErrZeroLength: a frame declared length 0, so it has no type byte
	// (CodeInternal). The connection is out of sync and must be closed.
	ErrZeroLength = errors.New("codec: zero-length frame")
	// ErrFrameTooLarge: a frame or message exceeds the size limit
	// (CodeResourceExhausted). Detected from the header before any payload
	// is allocated. On write, only that message fails.
	ErrFrameTooLarge = errors.New("codec: frame exceeds the size limit")
	// ErrTruncated: the stream ended inside a frame (CodeDataLoss).
	ErrTruncated = errors.New("codec: truncated frame")
	// ErrMalformed: the payload is not a valid envelope, or its oneof case
	// does not match the frame type (CodeInternal).
	ErrMalformed = errors.New("codec: malformed frame payload")
	// ErrUnknownFrameType: a frame type this version does not know
	// (CodeUnimplemented). The frame was consumed; keep reading. Newer peers
	// may send types older ones skip.
	ErrUnknownFrameType = errors.New("codec: unknown frame type")
)

// IsFatal reports whether err leaves the frame stream unusable. Only nil and
// unknown-frame-type errors let the reader go on.
func IsFatal(err error) bool {
	return err != nil && !errors.Is(err, ErrUnknownFrameType)
}

func wrap(code agentwire.Code, sentinel error, detail error) error {
	if detail == nil {
		return agentwire.NewError(code, sentinel)
	}
	return agentwire.NewError(code, joined{sentinel, detail})
}

// joined makes both the sentinel and the detail reachable by errors.Is/As
// while printing as "sentinel: detail".
type joined struct{ sentinel, detail error }

func (j joined) Error() string   { return j.sentinel.Error() + ": " + j.detail.Error() }
func (j joined) Unwrap() []error { return []error{j.sentinel, j.detail} }
