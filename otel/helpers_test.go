package otel

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// waitFor bounds every wait in the tests.
const waitFor = 10 * time.Second

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testHandler answers by URI: /block blocks with 403, /slow waits for
// release (or its context), anything else allows. It records the span
// context each handler call got.
type testHandler struct {
	agent.Base
	release     chan struct{}
	releaseOnce sync.Once
	started     chan string

	mu   sync.Mutex
	seen map[string]trace.SpanContext // "cid/method" -> handler ctx span
}

func newTestHandler() *testHandler {
	return &testHandler{release: make(chan struct{}), started: make(chan string, 16), seen: make(map[string]trace.SpanContext)}
}

// releaseAll lets every /slow handler return.
func (h *testHandler) releaseAll() { h.releaseOnce.Do(func() { close(h.release) }) }

func (h *testHandler) note(ctx context.Context, cid, method string) {
	h.mu.Lock()
	h.seen[cid+"/"+method] = trace.SpanContextFromContext(ctx)
	h.mu.Unlock()
}

func (h *testHandler) handlerSpan(cid, method string) trace.SpanContext {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[cid+"/"+method]
}

func (h *testHandler) RequestHeaders(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	cid := ev.GetMetadata().GetCorrelationId()
	h.note(ctx, cid, "RequestHeaders")
	switch ev.GetUri() {
	case "/block":
		return agent.Block(403, "no"), nil
	case "/slow":
		h.started <- cid
		select {
		case <-h.release:
			return nil, nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	return nil, nil
}

func (h *testHandler) RequestBodyChunk(ctx context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	h.note(ctx, ev.GetCorrelationId(), "RequestBodyChunk")
	return nil, nil
}

func (h *testHandler) RequestComplete(ctx context.Context, ev *agentv2.RequestCompleteEvent) (*agentv2.AgentResponse, error) {
	h.note(ctx, ev.GetCorrelationId(), "RequestComplete")
	return nil, nil
}

// testAgent is a real agent serving a handler on a Unix socket; kill drops
// its connections, start brings it back on the same path.
type testAgent struct {
	t    *testing.T
	path string
	h    agent.Handler
	opts []agent.Option

	mu     sync.Mutex
	srv    *agent.Server
	cancel context.CancelFunc
	done   chan struct{}
}

func newTestAgent(t *testing.T, h agent.Handler, opts ...agent.Option) *testAgent {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	a := &testAgent{t: t, path: filepath.Join(dir, "a.sock"), h: h, opts: append([]agent.Option{agent.WithLogger(quiet())}, opts...)}
	a.start()
	t.Cleanup(a.kill)
	return a
}

func (a *testAgent) endpoint() string { return "unix://" + a.path }

func (a *testAgent) start() {
	a.t.Helper()
	srv, err := agent.NewServer(a.h, a.opts...)
	require.NoError(a.t, err)
	ln, err := srv.ListenUnix(a.path)
	require.NoError(a.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeUnix(ctx, ln)
	}()
	a.mu.Lock()
	a.srv, a.cancel, a.done = srv, cancel, done
	a.mu.Unlock()
}

func (a *testAgent) kill() {
	a.mu.Lock()
	srv, cancel, done := a.srv, a.cancel, a.done
	a.srv = nil
	a.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	cancel()
	<-done
}

// env is a pool with an Interceptor in front of one real agent with
// another, both recording into the same SDK providers.
type env struct {
	t      *testing.T
	rec    *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	pc     *Interceptor // the pool's
	ic     *Interceptor // the agent's
	pool   *pool.Pool
	agent  *testAgent
	h      *testHandler
}

type envConfig struct {
	pcOpts, icOpts []Option
	poolOpts       []pool.Option
	agentOpts      []agent.Option
	handler        agent.Handler // default: the env's testHandler
	conns          int
}

func newEnv(t *testing.T, cfg envConfig) *env {
	t.Helper()
	e := &env{t: t, rec: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader(), h: newTestHandler()}
	e.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.reader))
	t.Cleanup(func() {
		_ = e.tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	providers := []Option{WithTracerProvider(e.tp), WithMeterProvider(mp), WithPropagator(propagation.TraceContext{})}
	var err error
	e.pc, err = NewInterceptor(append(providers, cfg.pcOpts...)...)
	require.NoError(t, err)
	e.ic, err = NewInterceptor(append(providers, cfg.icOpts...)...)
	require.NoError(t, err)
	h := cfg.handler
	if h == nil {
		h = e.h
	}
	t.Cleanup(e.h.releaseAll)
	e.agent = newTestAgent(t, h, append([]agent.Option{agent.WithAgentID("waf"), agent.WithInterceptors(e.ic)}, cfg.agentOpts...)...)
	conns := cfg.conns
	if conns == 0 {
		conns = 1
	}
	e.pool, err = pool.New(append([]pool.Option{
		pool.WithInterceptors(e.pc),
		pool.WithLogger(quiet()),
		pool.WithConnections(conns),
		pool.WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond),
	}, cfg.poolOpts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.pool.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, e.pool.AddAgent(ctx, "waf", e.agent.endpoint()))
	return e
}

// root starts a span standing for the proxy's own request span.
func (e *env) root() (context.Context, trace.Span) {
	return e.tp.Tracer("test").Start(context.Background(), "proxy request", trace.WithSpanKind(trace.SpanKindServer))
}

func headers(cid, uri string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{CorrelationId: cid, RequestId: cid}, Method: "GET", Uri: uri, HttpVersion: "HTTP/1.1",
	}}}
}

func bodyChunk(cid string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: cid, Data: []byte("x"), IsLast: true,
	}}}
}

func complete(cid string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{
		CorrelationId: cid, StatusCode: 200,
	}}}
}

const service = "sentinel.agent.v2.AgentServiceV2"

// span returns the ended span of kind for method and correlation id,
// waiting for it.
func (e *env) span(kind trace.SpanKind, method, cid string) sdktrace.ReadOnlySpan {
	e.t.Helper()
	var found sdktrace.ReadOnlySpan
	require.Eventually(e.t, func() bool {
		found = findSpan(e.rec.Ended(), kind, method, cid)
		return found != nil
	}, waitFor, 5*time.Millisecond, "no %v span %s for %q", kind, method, cid)
	return found
}

func findSpan(spans []sdktrace.ReadOnlySpan, kind trace.SpanKind, method, cid string) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if s.SpanKind() == kind && s.Name() == service+"/"+method && attrOf(s, CorrelationIDKey).AsString() == cid {
			return s
		}
	}
	return nil
}

func attrOf(s sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// hasEvent reports whether s has an event name dated within the span.
func hasEvent(s sdktrace.ReadOnlySpan, name string) bool {
	return eventOf(s, name) != nil
}

func eventOf(s sdktrace.ReadOnlySpan, name string) *sdktrace.Event {
	for _, ev := range s.Events() {
		if ev.Name == name && !ev.Time.Before(s.StartTime()) && !ev.Time.After(s.EndTime()) {
			return &ev
		}
	}
	return nil
}

func (e *env) collect() metricdata.ResourceMetrics {
	e.t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(e.t, e.reader.Collect(context.Background(), &rm))
	return rm
}

func findMetric(rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

func matches(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// intValue sums the int64 sum or gauge points of metric name that carry
// want; ok is false when none does.
func intValue(rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) (total int64, ok bool) {
	m, found := findMetric(rm, name)
	if !found {
		return 0, false
	}
	var points []metricdata.DataPoint[int64]
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		points = d.DataPoints
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	}
	for _, p := range points {
		if matches(p.Attributes, want) {
			total += p.Value
			ok = true
		}
	}
	return total, ok
}

func floatValue(rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) (total float64, ok bool) {
	m, found := findMetric(rm, name)
	if !found {
		return 0, false
	}
	var points []metricdata.DataPoint[float64]
	switch d := m.Data.(type) {
	case metricdata.Sum[float64]:
		points = d.DataPoints
	case metricdata.Gauge[float64]:
		points = d.DataPoints
	}
	for _, p := range points {
		if matches(p.Attributes, want) {
			total += p.Value
			ok = true
		}
	}
	return total, ok
}

// histCount counts the observations of histogram name that carry want.
func histCount(rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) uint64 {
	m, found := findMetric(rm, name)
	if !found {
		return 0
	}
	var n uint64
	if d, ok := m.Data.(metricdata.Histogram[float64]); ok {
		for _, p := range d.DataPoints {
			if matches(p.Attributes, want) {
				n += p.Count
			}
		}
	}
	return n
}

func codeOf(err error) agentwire.Code { return agentwire.CodeOf(err) }
