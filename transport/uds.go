package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/wire/refenc"
)

// TransportUnix names the Unix-socket transport.
const TransportUnix = "uds"

// UnixEncoding is the payload encoding of a Unix-socket connection.
type UnixEncoding string

// Unix-socket encodings. Auto speaks protobuf and falls back to the
// reference's JSON handshake (offering MessagePack, then JSON) when the
// agent answers in JSON or hangs up without answering, as the reference's
// agents do; the others skip that detection.
const (
	UnixAuto     UnixEncoding = ""
	UnixProtobuf UnixEncoding = "protobuf"
	UnixJSON     UnixEncoding = refenc.NameJSON
	UnixMsgPack  UnixEncoding = refenc.NameMsgPack
)

// WithUnixEncoding sets the encoding of Unix-socket connections; an
// endpoint's ?encoding= query sets it too (see [Dial]).
func WithUnixEncoding(e UnixEncoding) Option {
	return optionFunc(func(c *config) { c.unixEncoding = e })
}

// ParseUnixEncoding reads an ?encoding= value: auto, protobuf, json or
// msgpack.
func ParseUnixEncoding(s string) (UnixEncoding, error) {
	switch e := UnixEncoding(s); e {
	case "auto":
		return UnixAuto, nil
	case UnixAuto, UnixProtobuf, UnixJSON, UnixMsgPack:
		return e, nil
	}
	return "", agentwire.Errorf(agentwire.CodeInvalidArgument, "unknown encoding %q (want auto, protobuf, json or msgpack)", s)
}

// errJSONHandshake: the agent answered the protobuf handshake in JSON.
var errJSONHandshake = errors.New("transport: the agent answered in JSON (a reference agent: dial with ?encoding=auto, json or msgpack)")

// DialUnix connects to an agent's Unix socket at path and handshakes. The
// handshake timeout bounds every step, a fallback redial included; ctx
// may bound them further.
func DialUnix(ctx context.Context, path string, opts ...Option) (Conn, error) {
	cfg := newConfig(opts)
	dctx := ctx
	if cfg.handshakeTimeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, cfg.handshakeTimeout)
		defer cancel()
	}
	switch cfg.unixEncoding {
	case UnixJSON:
		return dialUnix(dctx, path, cfg, []string{refenc.NameJSON})
	case UnixMsgPack:
		return dialUnix(dctx, path, cfg, []string{refenc.NameMsgPack})
	}
	c, err := dialUnix(dctx, path, cfg, nil)
	if cfg.unixEncoding != UnixAuto || !referenceAgent(err) {
		return c, err
	}
	c, err2 := dialUnix(dctx, path, cfg, []string{refenc.NameMsgPack, refenc.NameJSON})
	if err2 != nil && !errors.Is(err, errJSONHandshake) && referenceAgent(err2) {
		return nil, err // it hung up on both: report the first
	}
	return c, err2
}

// referenceAgent reports whether a failed protobuf handshake looks like a
// reference agent: an answer in JSON, or the connection closed unanswered
// (uds_server.rs closes on a handshake it cannot parse).
func referenceAgent(err error) bool {
	return errors.Is(err, errJSONHandshake) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// dialUnix dials path and runs the session over protobuf frames, or over
// the reference's payloads when offer lists encodings.
func dialUnix(ctx context.Context, path string, cfg *config, offer []string) (Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if ctx.Err() != nil {
			return nil, agentwire.NewError(agentwire.CodeDeadlineExceeded, fmt.Errorf("dial %s: %w", path, err))
		}
		return nil, agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("dial %s: %w", path, err))
	}
	if offer != nil {
		return startSession(ctx, cfg, newRefWire(nc, cfg, TransportUnix, offer))
	}
	return startSession(ctx, cfg, newFramedWire(nc, cfg, TransportUnix))
}
