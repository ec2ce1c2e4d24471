package codec

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// DefaultMaxFrameSize is the largest frame (type byte plus payload) accepted
// or written unless configured otherwise: 16 MiB.
const DefaultMaxFrameSize = 16 << 20

// readBufferSize is the buffered reader's size: frames up to this size are
// decoded straight from it without a copy. Every connection holds one, idle
// or not: 32 KiB fits a 16 KiB body chunk and hundreds of pipelined
// decisions, and keeps an idle connection well under 64 KiB.
const readBufferSize = 32 << 10

// Reader reads frames from a byte stream. It is not safe for concurrent use:
// one goroutine owns a Reader.
type Reader struct {
	src     io.Reader
	br      *bufio.Reader
	max     int
	big     []byte // reused for payloads larger than the buffered reader; grows as they arrive
	pending int    // bytes of the previous frame still to discard from br
}

// NewReader returns a Reader over r that rejects frames larger than max bytes
// (type byte plus payload). max <= 0 means [DefaultMaxFrameSize].
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	return &Reader{src: r, br: bufio.NewReaderSize(r, readBufferSize), max: max}
}

// Renew gives the Reader new buffers, carrying over the bytes it holds
// unread: payloads returned so far stay valid for as long as anybody uses
// them, and the next reads do not touch that memory. A reader that lends
// payloads (decoded without copies) to code that may outlive the next read
// calls it before reading on.
func (r *Reader) Renew() {
	if r.pending > 0 {
		_, _ = r.br.Discard(r.pending)
		r.pending = 0
	}
	r.big = nil
	src := r.src
	if n := r.br.Buffered(); n > 0 {
		held, _ := r.br.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(held)), r.src)
		r.src = src // a second Renew before the next read keeps them too
	}
	r.br = bufio.NewReaderSize(src, readBufferSize)
}

// ReadFrame reads the next frame and returns its type and payload. The
// payload aliases the Reader's buffer: it is valid only until the next call.
func (r *Reader) ReadFrame() (agentv2.FrameType, []byte, error) {
	if r.pending > 0 {
		// The previous payload was served from br's buffer; consume it now.
		_, _ = r.br.Discard(r.pending)
		r.pending = 0
	}
	// The length alone decides a zero-length or oversize frame: judge it
	// before waiting for the type byte, which a zero-length frame does not
	// have (a peer that sends one and then nothing must not hang us).
	hdr, err := r.br.Peek(4)
	if err != nil {
		if errors.Is(err, io.EOF) && len(hdr) == 0 {
			return 0, nil, agentwire.NewError(agentwire.CodeUnavailable, io.EOF)
		}
		return 0, nil, readErr(err)
	}
	n := int(binary.BigEndian.Uint32(hdr))
	if n == 0 {
		return 0, nil, wrap(agentwire.CodeInternal, ErrZeroLength, nil)
	}
	if n > r.max || n < 0 {
		return 0, nil, wrap(agentwire.CodeResourceExhausted, ErrFrameTooLarge,
			fmt.Errorf("frame of %d bytes, limit %d", n, r.max))
	}
	if hdr, err = r.br.Peek(agentv2.FrameHeaderSize); err != nil {
		return 0, nil, readErr(err)
	}
	t := agentv2.FrameType(hdr[4])
	_, _ = r.br.Discard(agentv2.FrameHeaderSize)
	size := n - 1
	if size <= r.br.Size() {
		payload, err := r.br.Peek(size)
		if err != nil {
			return 0, nil, readErr(err)
		}
		r.pending = size
		return t, payload, nil
	}
	payload, err := r.readBig(size)
	if err != nil {
		return 0, nil, err
	}
	return t, payload, nil
}

// readBig reads a payload larger than the buffered reader into r.big. The
// buffer grows with the bytes that arrive, not with the length the header
// announces, so a peer that announces a 16 MiB frame and sends five bytes
// costs no 16 MiB allocation.
func (r *Reader) readBig(size int) ([]byte, error) {
	buf := r.big[:0]
	for len(buf) < size {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(size, max(2*cap(buf), 2*readBufferSize)))
			copy(grown, buf)
			buf = grown
			r.big = grown
		}
		n, err := io.ReadFull(r.br, buf[len(buf):min(size, cap(buf))])
		buf = buf[:len(buf)+n]
		if err != nil {
			return nil, readErr(err)
		}
	}
	return buf, nil
}

// readErr classifies an I/O error met inside a frame.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return wrap(agentwire.CodeDataLoss, ErrTruncated, nil)
	}
	return agentwire.NewError(agentwire.CodeUnavailable, err)
}

// ReadProxyToAgent reads the next frame into m, replacing its contents.
// Strings and bytes in m are copies: m outlives the next read.
func (r *Reader) ReadProxyToAgent(m *agentv2.ProxyToAgent) error {
	return r.read(m, agentv2.IsProxyToAgentFrame, false)
}

// ReadAgentToProxy reads the next frame into m, replacing its contents.
// Strings and bytes in m are copies: m outlives the next read.
func (r *Reader) ReadAgentToProxy(m *agentv2.AgentToProxy) error {
	return r.read(m, agentv2.IsAgentToProxyFrame, false)
}

// ReadProxyToAgentUnsafe is ReadProxyToAgent without copies: strings and
// bytes in m alias the Reader's buffer and are valid only until the next
// read. Use it only where the caller controls m's lifetime.
func (r *Reader) ReadProxyToAgentUnsafe(m *agentv2.ProxyToAgent) error {
	return r.read(m, agentv2.IsProxyToAgentFrame, true)
}

// ReadAgentToProxyUnsafe is ReadAgentToProxy without copies; see
// [Reader.ReadProxyToAgentUnsafe] for the lifetime rule.
func (r *Reader) ReadAgentToProxyUnsafe(m *agentv2.AgentToProxy) error {
	return r.read(m, agentv2.IsAgentToProxyFrame, true)
}

// envelope is what the generated frame code provides for both directions.
type envelope interface {
	Reset()
	UnmarshalFrame(t agentv2.FrameType, payload []byte) error
	UnmarshalFrameUnsafe(t agentv2.FrameType, payload []byte) error
}

func (r *Reader) read(m envelope, known func(agentv2.FrameType) bool, unsafe bool) error {
	t, payload, err := r.ReadFrame()
	if err != nil {
		return err
	}
	return Decode(m, t, payload, known, unsafe)
}

// Decode decodes one frame's payload into m. known tells which types m's
// direction has; an unknown type yields [ErrUnknownFrameType] without
// touching m. Otherwise m is reset first, so nothing of its previous
// contents (possibly handed to someone else) is reused or changed.
func Decode(m envelope, t agentv2.FrameType, payload []byte, known func(agentv2.FrameType) bool, unsafe bool) error {
	if !known(t) {
		return wrap(agentwire.CodeUnimplemented, ErrUnknownFrameType, fmt.Errorf("type 0x%02x, %d bytes skipped", uint8(t), len(payload)))
	}
	m.Reset()
	var err error
	if unsafe {
		err = m.UnmarshalFrameUnsafe(t, payload)
	} else {
		err = m.UnmarshalFrame(t, payload)
	}
	if err != nil {
		return wrap(agentwire.CodeInternal, ErrMalformed, err)
	}
	return nil
}

// FrameBuffered reports whether the next frame is wholly in memory already,
// so the next ReadFrame will not wait for the peer. A reader that answers
// frames as it reads them uses it to write its answers once per burst.
func (r *Reader) FrameBuffered() bool {
	k := r.br.Buffered() - r.pending
	if k < 4 {
		return false
	}
	hdr, err := r.br.Peek(r.pending + 4)
	if err != nil {
		return false
	}
	return k >= 4+int(binary.BigEndian.Uint32(hdr[r.pending:]))
}
