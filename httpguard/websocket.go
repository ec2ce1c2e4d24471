package httpguard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/agentwire/agentwire/events"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// ErrFrameBlocked is what a guarded websocket connection returns once an
// agent blocked one of its frames: the client gets a close frame (1008,
// policy violation) and the connection ends.
var ErrFrameBlocked = errors.New("httpguard: websocket frame blocked by an agent")

// frameConn is the hijacked connection of a guarded websocket: bytes read
// from it (client to server) and written to it (server to client) are
// split into frames (RFC 6455), and each frame goes to the agents before
// it is passed on. Reads and writes may run concurrently with each other,
// as httputil.ReverseProxy's copiers do.
type frameConn struct {
	net.Conn
	x    *exchange
	in   frames // client to server
	out  frames // server to client
	wmu  sync.Mutex
	rbuf []byte
	pend []byte // inspected client bytes not yet read
}

func newFrameConn(c net.Conn, x *exchange) *frameConn {
	fc := &frameConn{Conn: c, x: x, rbuf: make([]byte, 32<<10)}
	fc.in = frames{x: x, clientToServer: true}
	fc.out = frames{x: x}
	return fc
}

// Read returns client bytes once the agents let their frames through.
func (c *frameConn) Read(p []byte) (int, error) {
	for len(c.pend) == 0 {
		n, err := c.Conn.Read(c.rbuf)
		out, ferr := c.in.feed(c.rbuf[:n])
		if ferr != nil {
			c.closeWith(ferr)
			return 0, ferr
		}
		c.pend = out
		if len(out) == 0 && err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pend)
	c.pend = c.pend[n:]
	return n, nil
}

// Write passes server bytes to the client once the agents let their
// frames through.
func (c *frameConn) Write(p []byte) (int, error) {
	out, err := c.out.feed(p)
	if err != nil {
		c.closeWith(err)
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// closeWith tells the client why its connection ends: the agent's close
// code and reason, or policy violation (1008).
func (c *frameConn) closeWith(err error) {
	code, reason := uint32(1008), ""
	if ce := (*FrameClosedError)(nil); errors.As(err, &ce) {
		code, reason = ce.Code, ce.Reason
	}
	if len(reason) > 123 {
		reason = reason[:123] // a control frame's payload is at most 125 bytes
	}
	frame := []byte{0x88, byte(2 + len(reason)), byte(code >> 8), byte(code)}
	frame = append(frame, reason...)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, _ = c.Conn.Write(frame)
}

// FrameClosedError is what a guarded websocket connection returns once an
// agent's websocket_decision closed it (protocol.md §18); the client got a
// close frame with Code and Reason.
type FrameClosedError struct {
	Code   uint32
	Reason string
}

func (e *FrameClosedError) Error() string {
	return fmt.Sprintf("httpguard: websocket closed by an agent: %d %s", e.Code, e.Reason)
}

// frames splits one direction's byte stream into frames and inspects them.
// Frames larger than every agent's limit pass uninspected.
type frames struct {
	x              *exchange
	clientToServer bool
	buf            []byte // bytes not yet passed on
	skip           uint64 // payload bytes of an uninspected frame still to pass
	message        agentv2.WebSocketFrameEvent_FrameType
}

// feed takes the next bytes of the stream and returns those that may pass.
func (f *frames) feed(data []byte) ([]byte, error) {
	f.buf = append(f.buf, data...)
	var out []byte
	for len(f.buf) > 0 {
		if f.skip > 0 {
			n := min(f.skip, uint64(len(f.buf)))
			out = append(out, f.buf[:n]...)
			f.buf, f.skip = f.buf[n:], f.skip-n
			continue
		}
		h, ok := parseFrameHeader(f.buf)
		if !ok {
			break
		}
		if h.length > uint64(f.x.rt.maxFrame) {
			out = append(out, f.buf[:h.size]...)
			f.buf, f.skip = f.buf[h.size:], h.length
			continue
		}
		end := h.size + int(h.length)
		if len(f.buf) < end {
			break
		}
		drop, err := f.inspect(h, f.buf[h.size:end])
		if err != nil {
			return nil, err
		}
		if !drop {
			out = append(out, f.buf[:end]...)
		}
		f.buf = f.buf[end:]
	}
	if len(f.buf) == 0 {
		f.buf = nil
	}
	return out, nil
}

// inspect sends one frame to the agents: drop when one dropped it, an
// error when one blocked it or closed the connection.
func (f *frames) inspect(h frameHeader, payload []byte) (drop bool, err error) {
	data := payload
	if h.masked {
		data = make([]byte, len(payload))
		for i, b := range payload {
			data[i] = b ^ h.key[i%4]
		}
	}
	kind := frameKind(h.opcode)
	switch {
	case h.opcode == 0:
		kind = f.message
	case h.opcode < 8 && !h.fin:
		f.message = kind // the first fragment names the message's type
	}
	x := f.x
	e := newEdit()
	x.askEdit(kindFrame, &e, func(i int, _ bool) *agentv2.ProxyToAgent {
		d := data
		if limit := x.rt.agents[i].maxBody; int64(len(d)) > limit {
			d = d[:limit]
		}
		return events.WebSocketFrame(x.corr, f.clientToServer, kind, d)
	})
	if x.stopped() {
		return false, ErrFrameBlocked
	}
	switch ws := e.frame; ws.GetAction() {
	case agentv2.WebSocketDecision_ACTION_CLOSE:
		code := ws.GetCloseCode()
		if code == 0 {
			code = 1008
		}
		return false, &FrameClosedError{Code: code, Reason: ws.GetCloseReason()}
	case agentv2.WebSocketDecision_ACTION_DROP:
		if !h.fin || h.opcode == 0 {
			// Dropping part of a fragmented message would leave the peer
			// a broken one: the connection closes instead.
			return false, &FrameClosedError{Code: 1008, Reason: "agent dropped a message fragment"}
		}
		return true, nil
	}
	return false, nil
}

func frameKind(opcode byte) agentv2.WebSocketFrameEvent_FrameType {
	switch opcode {
	case 1:
		return agentv2.WebSocketFrameEvent_FRAME_TYPE_TEXT
	case 2:
		return agentv2.WebSocketFrameEvent_FRAME_TYPE_BINARY
	case 8:
		return agentv2.WebSocketFrameEvent_FRAME_TYPE_CLOSE
	case 9:
		return agentv2.WebSocketFrameEvent_FRAME_TYPE_PING
	case 10:
		return agentv2.WebSocketFrameEvent_FRAME_TYPE_PONG
	}
	return agentv2.WebSocketFrameEvent_FRAME_TYPE_UNSPECIFIED
}

// frameHeader is a parsed RFC 6455 frame header.
type frameHeader struct {
	fin    bool
	opcode byte
	masked bool
	key    [4]byte
	length uint64 // of the payload
	size   int    // of the header
}

// parseFrameHeader parses the header at the start of b; false if b does
// not hold all of it yet.
func parseFrameHeader(b []byte) (frameHeader, bool) {
	if len(b) < 2 {
		return frameHeader{}, false
	}
	h := frameHeader{fin: b[0]&0x80 != 0, opcode: b[0] & 0x0f, masked: b[1]&0x80 != 0, size: 2}
	switch n := b[1] & 0x7f; n {
	case 126:
		if len(b) < 4 {
			return frameHeader{}, false
		}
		h.length, h.size = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return frameHeader{}, false
		}
		h.length, h.size = binary.BigEndian.Uint64(b[2:]), 10
	default:
		h.length = uint64(n)
	}
	if h.masked {
		if len(b) < h.size+4 {
			return frameHeader{}, false
		}
		copy(h.key[:], b[h.size:])
		h.size += 4
	}
	return h, true
}
