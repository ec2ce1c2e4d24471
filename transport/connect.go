package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	iwire "github.com/agentwire/agentwire/internal/wire"
	"golang.org/x/net/http2"
)

// TransportConnect names the connect-go transport (gRPC protocol over HTTP/2).
const TransportConnect = "connect"

// DialConnect connects with connect-go to baseURL ("http://host:port" for
// HTTP/2 without TLS, "https://…" with TLS), opens ProcessStream using the
// gRPC protocol, and handshakes. grpc-go ([DialGRPC]) measures several times
// faster; this transport exists for agents behind HTTP infrastructure that
// speaks only Connect or gRPC-Web-capable HTTP/2.
func DialConnect(ctx context.Context, baseURL string, opts ...Option) (Conn, error) {
	cfg := newConfig(opts)
	plain := strings.HasPrefix(baseURL, "http://")
	if !plain && !strings.HasPrefix(baseURL, "https://") {
		return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "connect base URL %q: want http:// or https://", baseURL)
	}
	tr := &http2.Transport{AllowHTTP: plain, TLSClientConfig: cfg.tlsConfig}
	tr.DialTLSContext = func(ctx context.Context, network, addr string, tc *tls.Config) (net.Conn, error) {
		if plain {
			tc = nil
		}
		return dialH2(ctx, network, addr, tc)
	}
	limit := orDefault(cfg.maxFrameSize, codec.DefaultMaxFrameSize)
	guard := &envelopeGuard{max: limit}
	client := iwire.NewConnectClient(&http.Client{Transport: guard.wrap(tr)}, baseURL, cfg.serviceName,
		connect.WithGRPC(),
		// The codec passes the events senders encoded (encodedMsg) through.
		connect.WithCodec(iwire.ConnectCodec{}),
		connect.WithAcceptCompression("gzip", nil, nil),
		connect.WithReadMaxBytes(limit),
		connect.WithSendMaxBytes(limit),
	)
	return dialStream(ctx, cfg, TransportConnect, func(sctx context.Context, w *streamWire) error {
		stream := client.ProcessStream(sctx)
		if cfg.streamHeaders != nil {
			h := stream.RequestHeader()
			cfg.streamHeaders(ctx, func(k, v string) { h.Add(k, v) })
		}
		// The stream's Conn takes the wire's own send and receive targets.
		conn, err := stream.Conn()
		if err != nil {
			return iwire.FromConnect(err)
		}
		rpc := iwire.ConnectStream[*encodedMsg, *replyTarget](conn)
		w.sendMsg = rpc.Send
		w.recvMsg = func(r *replyTarget) error {
			err := rpc.Recv(r)
			if gerr := guard.failure(); err != nil && gerr != nil {
				return gerr
			}
			return err
		}
		w.teardown = func() error {
			_ = stream.CloseRequest()
			_ = stream.CloseResponse()
			tr.CloseIdleConnections()
			return nil
		}
		return nil
	})
}

// envelopeGuard checks the gRPC message prefixes of a Connect stream's
// response body before connect-go reads them. After a receive error (a
// message over the size limit, or compressed without compression),
// connect-go reads on to the end of the body for the trailers, which on a
// ProcessStream the agent keeps open never comes. The guard fails such a
// message at its prefix, and every read after it, so that the session
// sees the protocol violation at once. Only the session's reader reads.
type envelopeGuard struct {
	body   io.ReadCloser
	max    int
	prefix [5]byte
	n      int   // prefix bytes seen of the current message
	left   int64 // payload bytes of the current message still to pass
	err    error
}

// wrap returns rt with the guard on its (only) response body.
func (g *envelopeGuard) wrap(rt http.RoundTripper) http.RoundTripper {
	return iwire.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err == nil && resp.Body != nil {
			g.body = resp.Body
			resp.Body = g
		}
		return resp, err
	})
}

// failure returns the violation the guard found, if any.
func (g *envelopeGuard) failure() error { return g.err }

func (g *envelopeGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.body.Read(p)
	for i := 0; i < n; {
		if g.left > 0 {
			k := int(min(g.left, int64(n-i)))
			i += k
			g.left -= int64(k)
			continue
		}
		g.prefix[g.n] = p[i]
		g.n++
		i++
		if g.n < len(g.prefix) {
			continue
		}
		g.n = 0
		size := int64(binary.BigEndian.Uint32(g.prefix[1:]))
		switch {
		case g.prefix[0] != 0:
			g.err = agentwire.NewError(agentwire.CodeInternal,
				fmt.Errorf("%w: message flags 0x%02x (no compression was negotiated)", codec.ErrMalformed, g.prefix[0]))
		case size > int64(g.max):
			g.err = agentwire.NewError(agentwire.CodeResourceExhausted,
				fmt.Errorf("%w: message of %d bytes, limit %d", codec.ErrFrameTooLarge, size, g.max))
		default:
			g.left = size
			continue
		}
		// Pass on what came before the bad prefix; fail from there on.
		if before := i - len(g.prefix); before > 0 {
			return before, nil
		}
		return 0, g.err
	}
	return n, err
}

func (g *envelopeGuard) Close() error { return g.body.Close() }
