package transport

import (
	"context"
	"crypto/tls"
	"net/url"

	"github.com/agentwire/agentwire"
)

// Dial connects to an agent endpoint, choosing the transport from the
// scheme explicitly (never from the look of the address):
//
//	unix:///run/agent.sock   Unix socket (?encoding=auto|protobuf|json|msgpack,
//	                         see WithUnixEncoding)
//	grpc://host:port         gRPC over plaintext HTTP/2 (grpc-go)
//	grpcs://host:port        gRPC over TLS (grpc-go)
//	http://host:port         Connect client, gRPC protocol over h2c
//	https://host:port        Connect client over TLS
func Dial(ctx context.Context, endpoint string, opts ...Option) (Conn, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "endpoint %q: %w", endpoint, err)
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Opaque
		}
		if path == "" {
			return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "endpoint %q: no socket path", endpoint)
		}
		if q := u.Query(); q.Has("encoding") {
			enc, err := ParseUnixEncoding(q.Get("encoding"))
			if err != nil {
				return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "endpoint %q: %w", endpoint, err)
			}
			opts = append(opts[:len(opts):len(opts)], WithUnixEncoding(enc))
		}
		return DialUnix(ctx, path, opts...)
	case "grpc":
		return DialGRPC(ctx, u.Host, opts...)
	case "grpcs":
		cfg := newConfig(opts)
		if cfg.tlsConfig == nil {
			opts = append(opts, WithTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
		}
		return DialGRPC(ctx, u.Host, opts...)
	case "http", "https":
		return DialConnect(ctx, u.Scheme+"://"+u.Host+u.Path, opts...)
	}
	return nil, agentwire.Errorf(agentwire.CodeInvalidArgument,
		"endpoint %q: unknown scheme %q (want unix, grpc, grpcs, http or https)", endpoint, u.Scheme)
}
