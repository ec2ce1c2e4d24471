package httpguard

import (
	"errors"
	"io"
	"slices"

	"github.com/agentwire/agentwire/events"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// inspect sends one chunk of body k (the request's or the response's) to
// the agents that take it, each within its byte limit; it returns the
// chunk as an agent's mutation leaves it, and whether the request goes
// on. fixed says the peer was told the body's length: a mutation that
// changes it is then a failure of the agent that asked. Each agent's chunk
// state is written only by the goroutine that moves that body.
func (x *exchange) inspect(k kind, data []byte, last bool, total int64, fixed bool) ([]byte, bool) {
	build := events.RequestBodyChunk
	if k == kindResponseBody {
		build = events.ResponseBodyChunk
	}
	e := newEdit()
	x.askEdit(k, &e, func(i int, _ bool) *agentv2.ProxyToAgent {
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
		st.seen = len(d)
		st.last = last
		return ev
	})
	if x.stopped() {
		return nil, false
	}
	if e.by < 0 {
		return data, true
	}
	out := e.applied(data, x.state[e.by].chunks(k).seen)
	if fixed && len(out) != len(data) {
		x.mu.Lock()
		x.failLocked(e.by, errResized, x.rt.agents[e.by].failStatus)
		x.mu.Unlock()
		return data, !x.stopped()
	}
	return out, true
}

// errResized: an agent changed the length of a body whose length the peer
// was told (Content-Length). Its request_headers or response_headers
// answer can remove Content-Length first (protocol.md §18).
var errResized = errors.New("body mutation changes the length of a body sent with Content-Length")

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
	fixed    bool // next's request declares the body's length
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
			out, ok := x.inspect(kindRequestBody, b.buf[start:], b.eof, b.total, b.fixed)
			if !ok {
				b.buf, b.err = b.buf[:0], x.endErr()
				return
			}
			b.buf = append(b.buf[:start], out...)
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
