package httpguard

import (
	"errors"
	"io"
	"slices"

	"github.com/agentwire/agentwire/events"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// inspect sends one chunk of body k (the request's or the response's) to
// the agents that take it, each within its byte limit; it reports whether
// the request goes on. Each agent's chunk state is written only by the
// goroutine that moves that body.
func (x *exchange) inspect(k kind, data []byte, last bool, total int64) bool {
	build := events.RequestBodyChunk
	if k == kindResponseBody {
		build = events.ResponseBodyChunk
	}
	x.ask(k, func(i int, _ bool) *agentv2.ProxyToAgent {
		st := x.state[i].chunks(k)
		if st.last {
			return nil
		}
		d := data
		if remain := max(x.rt.agents[i].maxBody-st.offset, 0); int64(len(d)) > remain {
			d = d[:remain]
		}
		if len(d) == 0 && !last {
			return nil // inspected all it may
		}
		ev := build(x.corr, d, events.Chunk{Index: st.index, Last: last, Offset: uint64(st.offset), Total: total}, x.g.clock)
		st.index++
		st.offset += int64(len(d))
		st.last = last
		return ev
	})
	return !x.stopped()
}

// endErr is what a body returns once the request has ended.
func (x *exchange) endErr() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case x.final != nil:
		return ErrBlocked
	case x.Err() != nil:
		return x.Err()
	}
	return errFinished
}

// body is a request body streamed to the agents as the handler reads it:
// each chunk is read from the client only when the agents have answered
// the one before (backpressure), and reaches the handler once they let it
// through. While an agent answers needs_more, chunks are held, up to its
// body limit.
type body struct {
	x        *exchange
	rc       io.ReadCloser
	total    int64  // the body's size, -1 if unknown
	buf      []byte // read from the client: held or ready
	ready    []byte // let through, not yet read by the handler
	read     int64
	eof      bool // the client's body has ended
	lastSent bool // the agents had its last chunk
	err      error
}

func newBody(x *exchange, rc io.ReadCloser, total int64) *body {
	return &body{x: x, rc: rc, total: total}
}

// Read implements io.Reader.
func (b *body) Read(p []byte) (int, error) {
	for len(b.ready) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.eof && b.lastSent {
			return 0, io.EOF
		}
		b.fill()
	}
	n := copy(p, b.ready)
	b.ready = b.ready[n:]
	return n, nil
}

// Close implements io.Closer.
func (b *body) Close() error { return b.rc.Close() }

// fill reads and inspects chunks until none of the agents needs more, the
// body ends, or the request does.
func (b *body) fill() {
	x := b.x
	b.buf = b.buf[:0]
	for {
		if x.stopped() {
			b.buf, b.err = b.buf[:0], x.endErr()
			return
		}
		start := len(b.buf)
		b.buf = slices.Grow(b.buf, x.g.cfg.chunkSize)[:start+x.g.cfg.chunkSize]
		n, err := b.rc.Read(b.buf[start:])
		b.buf = b.buf[:start+n]
		b.read += int64(n)
		x.received.Add(int64(n))
		if err != nil && !errors.Is(err, io.EOF) {
			// On HTTP/1 a client that goes away mid-body shows here, not
			// in the request's context.
			x.clientGone()
			b.buf, b.err = b.buf[:0], err
			return
		}
		b.eof = err != nil || b.total >= 0 && b.read >= b.total
		if n > 0 || b.eof && !b.lastSent {
			b.lastSent = b.eof
			if !x.inspect(kindRequestBody, b.buf[start:], b.eof, b.total) {
				b.buf, b.err = b.buf[:0], x.endErr()
				return
			}
		}
		if x.needy(kindRequestBody) && x.overLimit(kindRequestBody) {
			b.buf, b.err = b.buf[:0], ErrBodyLimit
			return
		}
		if !x.needy(kindRequestBody) {
			b.ready = b.buf
			return
		}
	}
}
