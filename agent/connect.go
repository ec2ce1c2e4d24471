package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/reflect/protoreflect"

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
	methods := agentv2.File_sentinel_agent_v2_agent_proto.Services().ByName("AgentServiceV2").Methods()
	name := srv.cfg.serviceName
	hopts := connect.WithHandlerOptions(append([]connect.HandlerOption{
		connect.WithCodec(wire.ConnectCodec{}),
		connect.WithReadMaxBytes(srv.cfg.maxFrameSize),
		connect.WithSendMaxBytes(srv.cfg.maxFrameSize),
	}, opts...)...)
	// The generated handler (agentv2connect.NewAgentServiceV2Handler) has
	// the schema's service name built in: these are its handlers, under
	// the configured name.
	c := &connectService{srv: srv}
	schema := func(method protoreflect.Name) connect.HandlerOption {
		return connect.WithHandlerOptions(connect.WithSchema(methods.ByName(method)), hopts)
	}
	stream := wire.Procedure(name, agentv2connect.AgentServiceV2ProcessStreamProcedure)
	control := wire.Procedure(name, agentv2connect.AgentServiceV2ControlStreamProcedure)
	event := wire.Procedure(name, agentv2connect.AgentServiceV2ProcessEventProcedure)
	mux := http.NewServeMux()
	mux.Handle(stream, connect.NewBidiStreamHandler(stream, c.ProcessStream, schema("ProcessStream")))
	mux.Handle(control, connect.NewBidiStreamHandler(control, c.ControlStream, schema("ControlStream")))
	mux.Handle(event, connect.NewUnaryHandler(event, c.ProcessEvent, schema("ProcessEvent")))
	return "/" + name + "/", mux
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
	st := &connectStream{ctx: ctx, bs: bs, rpcEnd: newRPCEnd()}
	return wire.ToConnect(c.srv.serveRPC(ctx, st, st.rpcEnd))
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

// connectStream adapts a connect-go bidi stream.
type connectStream struct {
	*rpcEnd
	ctx context.Context
	bs  *connect.BidiStream[agentv2.ProxyToAgent, agentv2.AgentToProxy]
	in  rpcTarget // what Recv receives into
}

var _ stream = (*connectStream)(nil)

// Recv decodes each message into a recycled envelope whose strings and
// bytes live in the stream's slab (see rpcTarget). It receives through the
// stream's Conn: BidiStream.Receive allocates a new message every time.
func (c *connectStream) Recv() (*agentv2.ProxyToAgent, error) {
	c.in.prepare()
	err := c.bs.Conn().Receive(&c.in)
	switch {
	case err == nil:
		return c.in.take(), nil
	case errors.Is(err, io.EOF):
		return nil, errHalfClosed
	case c.ctx.Err() != nil:
		return nil, errConnClosed
	}
	return nil, wire.FromConnect(err)
}

func (c *connectStream) Send(_ context.Context, m *agentv2.AgentToProxy) error {
	return c.send(func() error { return c.bs.Send(m) })
}

// Release takes back an answered event for the next one of its kind; safe
// to call from any goroutine, concurrently with Recv.
func (c *connectStream) Release(m *agentv2.ProxyToAgent) { releaseEnvelope(m) }
