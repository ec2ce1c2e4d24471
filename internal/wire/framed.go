package wire

import (
	"io"
	"net"
	"sync"

	"github.com/agentwire/agentwire/codec"
)

// Framed is a framed connection as both sides drive it: the session's
// reader reads frames with R, any goroutine writes through the embedded
// FrameWriter (whose Run the owner runs), and Close closes Conn once.
type Framed struct {
	*FrameWriter
	R    *codec.Reader
	Conn net.Conn
	once sync.Once
	err  error
}

// NewFramed frames conn, reading from r (conn, or a reader over it):
// frames of at most maxFrame bytes, at most maxPending bytes queued for
// writing (<= 0: the codec's defaults).
func NewFramed(conn net.Conn, r io.Reader, maxFrame, maxPending int) *Framed {
	return &Framed{
		FrameWriter: NewFrameWriter(conn, maxFrame, maxPending),
		R:           codec.NewReader(r, maxFrame),
		Conn:        conn,
	}
}

// Close closes the connection once, returning what that returned.
func (f *Framed) Close() error {
	f.once.Do(func() { f.err = f.Conn.Close() })
	return f.err
}
