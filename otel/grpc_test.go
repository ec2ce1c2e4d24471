package otel

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// headerLog keeps the traceparent headers of ProcessStream calls.
type headerLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *headerLog) add(v string) {
	l.mu.Lock()
	l.seen = append(l.seen, v)
	l.mu.Unlock()
}

func (l *headerLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seen...)
}

// tracing is a span recorder with its provider and an Interceptor
// writing to it, which serves both the pool and the agent.
type tracing struct {
	rec *tracetest.SpanRecorder
	tp  *sdktrace.TracerProvider
	ic  *Interceptor
}

func newTracing(t *testing.T) *tracing {
	t.Helper()
	tr := &tracing{rec: tracetest.NewSpanRecorder()}
	tr.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tr.rec))
	t.Cleanup(func() { _ = tr.tp.Shutdown(context.Background()) })
	var err error
	tr.ic, err = NewInterceptor(WithTracerProvider(tr.tp), WithoutMetrics(), WithPropagator(propagation.TraceContext{}),
		WithDialSpans())
	require.NoError(t, err)
	return tr
}

func (tr *tracing) span(t *testing.T, kind trace.SpanKind, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		for _, s := range tr.rec.Ended() {
			if s.SpanKind() == kind && s.Name() == name {
				found = s
				return true
			}
		}
		return false
	}, waitFor, 5*time.Millisecond, "no %v span %s", kind, name)
	return found
}

func traceparentOf(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// dialPool is a pool whose dials are traced, with one agent at endpoint.
func dialPool(t *testing.T, tr *tracing, endpoint string) *pool.Pool {
	t.Helper()
	p, err := pool.New(pool.WithInterceptors(tr.ic), pool.WithLogger(quiet()), pool.WithConnections(1))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, p.AddAgent(ctx, "waf", endpoint))
	return p
}

// sendTraced sends a request's headers and a body chunk under a root span
// and checks that the agent's spans are children of the proxy's.
func sendTraced(t *testing.T, tr *tracing, p *pool.Pool, transportName string) {
	t.Helper()
	ctx, root := tr.tp.Tracer("test").Start(context.Background(), "request")
	_, err := p.Send(ctx, "waf", headers("g1", "/allow"))
	require.NoError(t, err)
	_, err = p.Send(ctx, "waf", bodyChunk("g1"))
	require.NoError(t, err)
	root.End()
	c := tr.span(t, trace.SpanKindClient, service+"/RequestHeaders")
	assert.Equal(t, attribute.StringValue(transportName), attrOf(c, TransportKey))
	assertChild(t, c, tr.span(t, trace.SpanKindServer, service+"/RequestHeaders"))
	assertChild(t, c, tr.span(t, trace.SpanKindServer, service+"/RequestBodyChunk"))
}

func TestTraceOverGRPC(t *testing.T) {
	t.Parallel()
	tr := newTracing(t)
	var streams headerLog
	srv, err := agent.NewServer(newTestHandler(), agent.WithLogger(quiet()), agent.WithInterceptors(tr.ic))
	require.NoError(t, err)
	gs := grpc.NewServer(append(agent.GRPCServerOptions(),
		grpc.StreamInterceptor(func(s any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			md, _ := metadata.FromIncomingContext(ss.Context())
			streams.add(first(md.Get("traceparent")))
			return h(s, ss)
		}))...)
	srv.RegisterGRPC(gs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		gs.Stop()
		<-served
	})

	p := dialPool(t, tr, "grpc://"+ln.Addr().String())
	// The dial is a span, and the stream's headers carry it.
	dial := tr.span(t, trace.SpanKindClient, "agentwire.Dial")
	assert.Equal(t, attribute.StringValue("grpc"), attrOf(dial, TransportKey))
	require.NotEmpty(t, streams.get())
	assert.Equal(t, traceparentOf(dial.SpanContext()), streams.get()[0])

	sendTraced(t, tr, p, "grpc")

	// A unary ProcessEvent call takes the trace context of its own headers.
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	ctx, caller := tr.tp.Tracer("test").Start(context.Background(), "unary caller")
	md := metadata.MD{}
	propagation.TraceContext{}.Inject(ctx, grpcCarrier(md))
	out, err := agentv2.NewAgentServiceV2Client(cc).ProcessEvent(metadata.NewOutgoingContext(ctx, md),
		&agentv2.ProxyToAgent{EventId: 7, Message: &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: &agentv2.ResponseHeadersEvent{CorrelationId: "u1", StatusCode: 200}}})
	require.NoError(t, err)
	require.NotNil(t, out.GetResponse().GetAllow())
	caller.End()
	s := tr.span(t, trace.SpanKindServer, service+"/ResponseHeaders")
	assert.Equal(t, caller.SpanContext().SpanID(), s.Parent().SpanID())
	assert.Equal(t, caller.SpanContext().TraceID(), s.SpanContext().TraceID())
}

func TestTraceOverConnect(t *testing.T) {
	t.Parallel()
	tr := newTracing(t)
	var streams headerLog
	srv, err := agent.NewServer(newTestHandler(), agent.WithLogger(quiet()), agent.WithInterceptors(tr.ic))
	require.NoError(t, err)
	capture := connect.WithInterceptors(streamHeaderInterceptor{&streams})
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{Handler: srv.HTTPHandler(capture), Protocols: &protocols, ReadHeaderTimeout: waitFor}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		_ = hs.Close()
		<-served
	})

	p := dialPool(t, tr, "http://"+ln.Addr().String())
	dial := tr.span(t, trace.SpanKindClient, "agentwire.Dial")
	assert.Equal(t, attribute.StringValue("connect"), attrOf(dial, TransportKey))
	require.NotEmpty(t, streams.get())
	assert.Equal(t, traceparentOf(dial.SpanContext()), streams.get()[0])
	sendTraced(t, tr, p, "connect")
}

// streamHeaderInterceptor logs the traceparent of streaming calls.
type streamHeaderInterceptor struct{ log *headerLog }

func (streamHeaderInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc { return next }

func (streamHeaderInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i streamHeaderInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		i.log.add(conn.RequestHeader().Get("traceparent"))
		return next(ctx, conn)
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// TestWithoutTracingPropagates: with the pool's spans off, the agent's
// span still joins the caller's trace.
func TestWithoutTracingPropagates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{pcOpts: []Option{WithoutTracing()}})
	ctx, root := e.root()
	_, err := e.pool.Send(ctx, "waf", headers("w1", "/allow"))
	require.NoError(t, err)
	root.End()
	s := e.span(trace.SpanKindServer, "RequestHeaders", "w1")
	assert.Equal(t, root.SpanContext().SpanID(), s.Parent().SpanID())
	assert.Nil(t, findSpan(e.rec.Ended(), trace.SpanKindClient, "RequestHeaders", "w1"))
}
