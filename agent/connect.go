package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/gen/sentinel/agent/v2/agentv2connect"
	"github.com/agentwire/agentwire/internal/wire"
)

// ConnectHandler returns the agent service as a connect-go handler and the
// path to mount it on, serving the Connect, gRPC and gRPC-Web protocols
// under the configured service name ([WithServiceName]). ProcessStream
// needs HTTP/2 (h2c or TLS); ProcessEvent and ControlStream behave as
// described at [Server.RegisterGRPC]. opts come after the server's own
// (a vtprotobuf codec and the message size limit).
func (srv *Server) ConnectHandler(opts ...connect.HandlerOption) (string, http.Handler) {
	return wire.ConnectHandler(srv.cfg.serviceName, &connectService{srv: srv}, append([]connect.HandlerOption{
		connect.WithCodec(wire.ConnectCodec{}),
		connect.WithReadMaxBytes(srv.cfg.maxFrameSize),
		connect.WithSendMaxBytes(srv.cfg.maxFrameSize),
	}, opts...)...)
}

// HTTPHandler returns an http.Handler serving the agent service
// ([Server.ConnectHandler]), the gRPC health service (SERVING until
// Shutdown or Close, NOT_SERVING after) and gRPC server reflection (v1 and
// v1alpha). Serve it over HTTP/2, for example with [Server.ServeH2C].
func (srv *Server) HTTPHandler(opts ...connect.HandlerOption) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(srv.ConnectHandler(opts...))
	mux.Handle(grpchealth.NewHandler(srv.checker, opts...))
	reflector := srv.reflector()
	mux.Handle(grpcreflect.NewHandlerV1(reflector, opts...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, opts...))
	return mux
}

// ServeH2C serves [Server.HTTPHandler] on ln over HTTP/1.1 and unencrypted
// HTTP/2 (h2c, prior knowledge, as gRPC clients speak it) until ctx ends
// (closing every connection at once) or the server shuts down (waiting for
// the server to end its streams). It returns nil then, and the serving
// error otherwise.
func (srv *Server) ServeH2C(ctx context.Context, ln net.Listener) error {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{
		Handler:           srv.HTTPHandler(),
		Protocols:         &protocols,
		ReadHeaderTimeout: srv.cfg.handshakeTimeout,
		ErrorLog:          slog.NewLogLogger(srv.cfg.logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if !srv.addListener(ln) {
		_ = ln.Close()
		return nil
	}
	defer srv.removeListener(ln)
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	err := hs.Serve(ln)
	if ctx.Err() != nil {
		_ = hs.Close()
		return nil
	}
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		// Shutdown or Close closed ln; the streams end with the server.
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if hs.Shutdown(sctx) != nil {
			_ = hs.Close()
		}
		return nil
	}
	_ = hs.Close()
	return agentwire.NewError(agentwire.CodeUnavailable, err)
}

// connectService is the agent service for connect-go.
type connectService struct {
	srv *Server
}

var _ agentv2connect.AgentServiceV2Handler = (*connectService)(nil)

func (c *connectService) ProcessStream(ctx context.Context, bs *connect.BidiStream[agentv2.ProxyToAgent, agentv2.AgentToProxy]) error {
	return wire.ToConnect(c.srv.serveRPCStream(ctx, wire.ConnectStream[*sendTarget, *rpcTarget](bs.Conn())))
}

func (c *connectService) ControlStream(context.Context, *connect.BidiStream[agentv2.AgentControl, agentv2.ProxyControl]) error {
	return wire.ToConnect(errControlStream)
}

func (c *connectService) ProcessEvent(ctx context.Context, req *connect.Request[agentv2.ProxyToAgent]) (*connect.Response[agentv2.AgentToProxy], error) {
	resp, err := c.srv.processEvent(ctx, req.Msg)
	if err != nil {
		return nil, wire.ToConnect(err)
	}
	return connect.NewResponse(resp), nil
}
