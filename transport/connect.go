package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"golang.org/x/net/http2"
)

// TransportConnect names the connect-go transport (gRPC protocol over HTTP/2).
const TransportConnect = "connect"

// connectCodec is wireCodec for connect-go: pre-encoded messages pass
// through, replies decode with vtprotobuf.
type connectCodec struct{}

func (connectCodec) Name() string { return "proto" }

func (c connectCodec) Marshal(v any) ([]byte, error) { return c.MarshalAppend(nil, v) }

// MarshalAppend appends v's encoding to dst, a buffer from connect-go's
// pool. connect-go recycles whatever the codec returns into that pool (and
// reads later messages into it), so the codec must never return memory
// someone else owns, such as a pre-encoded message's pooled buffer: it
// copies.
func (connectCodec) MarshalAppend(dst []byte, v any) ([]byte, error) {
	switch m := v.(type) {
	case *encodedMsg:
		return append(dst, *m.bp...), nil
	case vtMessage:
		n := m.SizeVT()
		start := len(dst)
		dst = slices.Grow(dst, n)[:start+n]
		_, err := m.MarshalToSizedBufferVT(dst[start:])
		return dst, err
	}
	return nil, fmt.Errorf("agentwire codec: cannot marshal %T", v)
}

func (connectCodec) Unmarshal(b []byte, v any) error {
	m, ok := v.(vtMessage)
	if !ok {
		return fmt.Errorf("agentwire codec: cannot unmarshal into %T", v)
	}
	m.Reset()
	if u, ok := v.(unsafeUnmarshaler); ok {
		// b is connect-go's pooled buffer: decode from a copy m owns,
		// one allocation instead of one per string (see framedWire.recv).
		return u.UnmarshalVTUnsafe(append([]byte(nil), b...))
	}
	return m.UnmarshalVT(b)
}

// DialConnect connects with connect-go to baseURL ("http://host:port" for
// HTTP/2 without TLS, "https://…" with TLS), opens ProcessStream using the
// gRPC protocol, and handshakes. grpc-go ([DialGRPC]) measures several times
// faster; this transport exists for agents behind HTTP infrastructure that
// speaks only Connect or gRPC-Web-capable HTTP/2.
func DialConnect(ctx context.Context, baseURL string, opts ...Option) (Conn, error) {
	cfg := newConfig(opts)
	tr := &http2.Transport{}
	switch {
	case strings.HasPrefix(baseURL, "http://"):
		tr.AllowHTTP = true
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	case strings.HasPrefix(baseURL, "https://"):
		tr.TLSClientConfig = cfg.tlsConfig
	default:
		return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "connect base URL %q: want http:// or https://", baseURL)
	}
	client := connect.NewClient[encodedMsg, agentv2.AgentToProxy](
		&http.Client{Transport: tr},
		strings.TrimSuffix(baseURL, "/")+"/"+cfg.serviceName+"/ProcessStream",
		connect.WithGRPC(),
		connect.WithCodec(connectCodec{}),
		connect.WithAcceptCompression("gzip", nil, nil),
		connect.WithReadMaxBytes(maxOr(cfg.maxFrameSize)),
		connect.WithSendMaxBytes(maxOr(cfg.maxFrameSize)),
	)
	sctx, cancel := context.WithCancel(context.Background())
	stream := client.CallBidiStream(sctx)
	if cfg.streamHeaders != nil {
		h := stream.RequestHeader()
		cfg.streamHeaders(ctx, func(k, v string) { h.Add(k, v) })
	}
	w := &streamWire{
		transport: TransportConnect,
		max:       maxOr(cfg.maxFrameSize),
		queue:     make(chan *encodedMsg, streamSendQueue),
		closed:    make(chan struct{}),
		sendMsg: func(e *encodedMsg) error {
			err := stream.Send(e)
			e.free()
			return err
		},
		recvMsg: func(m *agentv2.AgentToProxy) error {
			r, err := stream.Receive()
			if err != nil {
				return connectErr(err)
			}
			m.Reset()
			m.Message, m.EventId = r.Message, r.EventId
			return nil
		},
		teardown: func() error {
			cancel()
			_ = stream.CloseRequest()
			_ = stream.CloseResponse()
			tr.CloseIdleConnections()
			return nil
		},
	}
	return startSession(ctx, cfg, w)
}

func connectErr(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		code := agentwire.Code(ce.Code())
		if code == agentwire.CodeCanceled || code == agentwire.CodeUnknown {
			code = agentwire.CodeUnavailable
		}
		return agentwire.NewError(code, fmt.Errorf("%w: %w", ErrPeerGone, err))
	}
	return agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("%w: %w", ErrPeerGone, err))
}
