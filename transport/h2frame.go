package transport

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/agentwire/agentwire"
)

// h2SendFrameSize is the largest HTTP/2 DATA frame the Connect transport
// sends, whatever the agent announces: golang.org/x/net/http2 gives a
// request body (ProcessStream lives as long as the connection) a write
// buffer of the peer's SETTINGS_MAX_FRAME_SIZE, up to 512 KiB. 16 KiB is
// the protocol's initial value and grpc-go's default.
const h2SendFrameSize = 16 << 10

// h2 frame and setting identifiers (RFC 9113, sections 6.5 and 6.5.2).
const (
	h2FrameHeaderLen      = 9
	h2FrameSettings       = 0x4
	h2FlagAck             = 0x1
	h2SettingMaxFrameSize = 0x5
	h2SettingLen          = 6
)

// frameSizeCap is an HTTP/2 client connection that rewrites every
// SETTINGS_MAX_FRAME_SIZE the server sends to h2SendFrameSize as it is
// read, byte by byte across reads. Lowering it is always safe: every
// endpoint accepts frames of 16 KiB. Only the HTTP/2 transport's read loop
// calls Read; writes pass through.
type frameSizeCap struct {
	net.Conn
	hdr  [h2FrameHeaderLen]byte
	hn   int  // header bytes seen of the current frame
	left int  // payload bytes of the current frame still to come
	set  bool // the current frame is a SETTINGS frame (not an ack)
	off  int  // position in the current setting entry, 0–5
	id   uint16
}

// wrapFrameSizeCap caps c's peer's max frame size; c's TLS state, if any,
// stays visible to the HTTP/2 transport.
func wrapFrameSizeCap(c net.Conn) net.Conn {
	f := &frameSizeCap{Conn: c}
	if tc, ok := c.(*tls.Conn); ok {
		return &tlsFrameSizeCap{frameSizeCap: f, tc: tc}
	}
	return f
}

func (f *frameSizeCap) Read(p []byte) (int, error) {
	n, err := f.Conn.Read(p)
	f.rewrite(p[:n])
	return n, err
}

// rewrite advances the frame parser over b, changing b in place.
func (f *frameSizeCap) rewrite(b []byte) {
	for len(b) > 0 {
		if f.hn < h2FrameHeaderLen {
			k := copy(f.hdr[f.hn:], b)
			f.hn += k
			b = b[k:]
			if f.hn < h2FrameHeaderLen {
				return
			}
			length := int(f.hdr[0])<<16 | int(f.hdr[1])<<8 | int(f.hdr[2])
			f.left = length
			f.set = f.hdr[3] == h2FrameSettings && f.hdr[4]&h2FlagAck == 0
			f.off = 0
			if length == 0 {
				f.hn = 0
			}
			continue
		}
		if !f.set {
			k := min(f.left, len(b))
			b = b[k:]
			f.left -= k
		} else {
			for len(b) > 0 && f.left > 0 {
				switch {
				case f.off < 2:
					f.id = f.id<<8 | uint16(b[0])
				case f.id == h2SettingMaxFrameSize:
					// The value's bytes, most significant first.
					b[0] = byte(uint32(h2SendFrameSize) >> (8 * (h2SettingLen - 1 - f.off)))
				}
				f.off++
				if f.off == h2SettingLen {
					f.off, f.id = 0, 0
				}
				b = b[1:]
				f.left--
			}
		}
		if f.left == 0 {
			f.hn = 0
		}
	}
}

// tlsFrameSizeCap keeps ConnectionState, which the HTTP/2 transport
// reads from TLS connections.
type tlsFrameSizeCap struct {
	*frameSizeCap
	tc *tls.Conn
}

func (t *tlsFrameSizeCap) ConnectionState() tls.ConnectionState { return t.tc.ConnectionState() }

// dialH2 dials an HTTP/2 connection for the Connect transport, capped by
// frameSizeCap: in the clear (h2c) with cfg nil, else over TLS with cfg
// (prepared by the HTTP/2 transport to offer h2 by ALPN).
func dialH2(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
	if cfg == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wrapFrameSizeCap(c), nil
	}
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		_ = c.Close()
		return nil, agentwire.Errorf(agentwire.CodeUnavailable, "connect: %s negotiated %q, not HTTP/2 (h2)", addr, p)
	}
	return wrapFrameSizeCap(tc), nil
}
