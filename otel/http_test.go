package otel

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire/httpguard"
)

// TestMiddlewareOneTrace sends a request with a body through the
// middleware and a guard: its server span is the root of one trace that
// holds every event's span on both sides, request_complete (sent in the
// background) included, and the HTTP metrics record it.
func TestMiddlewareOneTrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	g, err := httpguard.New(e.pool, httpguard.WithLogger(quiet()), httpguard.WithPropagator(propagation.TraceContext{}),
		httpguard.WithCorrelationIDs(func(*http.Request) string { return "h1" }),
		httpguard.WithRoute("/", httpguard.WithAgent("waf",
			httpguard.WithEvents(httpguard.RequestBody|httpguard.RequestComplete))))
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
	})
	srv := httptest.NewServer(e.pc.Middleware(g.Middleware(upstream)))
	t.Cleanup(srv.Close)

	resp, err := http.Post(srv.URL+"/login", "text/plain", strings.NewReader("user=a"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	var root trace.SpanContext
	require.Eventually(t, func() bool {
		for _, s := range e.rec.Ended() {
			if s.Name() == "POST" && s.SpanKind() == trace.SpanKindServer {
				root = s.SpanContext()
				assert.False(t, s.Parent().IsValid(), "the HTTP span is the root")
				assert.Equal(t, "/login", attrOf(s, URLPathKey).AsString())
				assert.EqualValues(t, 201, attrOf(s, HTTPStatusCodeKey).AsInt64())
				return true
			}
		}
		return false
	}, waitFor, 5*time.Millisecond, "no HTTP server span")
	ph := e.span(trace.SpanKindClient, "RequestHeaders", "h1")
	for _, m := range []string{"RequestHeaders", "RequestBodyChunk", "RequestComplete"} {
		c := e.span(trace.SpanKindClient, m, "h1")
		assert.Equal(t, root.SpanID(), c.Parent().SpanID(), "proxy %s span is a child of the HTTP span", m)
		assertChild(t, ph, e.span(trace.SpanKindServer, m, "h1"))
	}
	for _, s := range e.rec.Ended() {
		assert.Equal(t, root.TraceID(), s.SpanContext().TraceID(), "span %s is in the request's trace", s.Name())
	}

	rm := e.collect()
	assert.EqualValues(t, 1, histCount(rm, MetricHTTPDuration, HTTPMethodKey.String("POST"), HTTPStatusCodeKey.Int(201)))
	n, ok := intValue(rm, MetricHTTPActive, HTTPMethodKey.String("POST"))
	assert.True(t, ok)
	assert.Zero(t, n)
}

// TestMiddlewareAbort: a handler that aborts (http.ErrAbortHandler, as
// httpguard does for a response it cannot unsend) still ends its span, as
// an error, and the panic reaches net/http, which cuts the response.
func TestMiddlewareAbort(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	srv := httptest.NewServer(e.pc.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "partial")
		panic(http.ErrAbortHandler)
	})))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/cut")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
	}
	require.Error(t, err, "the response is cut")
	require.Eventually(t, func() bool {
		for _, s := range e.rec.Ended() {
			if s.Name() == "GET" {
				assert.Equal(t, codes.Error, s.Status().Code)
				return true
			}
		}
		return false
	}, waitFor, 5*time.Millisecond, "no HTTP span")
	n, ok := intValue(e.collect(), MetricHTTPActive, HTTPMethodKey.String("GET"))
	assert.True(t, ok)
	assert.Zero(t, n)
}
