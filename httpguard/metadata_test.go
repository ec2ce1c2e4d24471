package httpguard_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire/httpguard"
)

// TestMetadata: the request_headers event carries the correlation and
// request ids, the client behind trusted proxies, TLS, the route and
// upstream ids and the trace context of the request.
func TestMetadata(t *testing.T) {
	t.Parallel()
	s := &script{}
	p := newPool(t, map[string]string{"a": startUnix(t, s)})
	g := newGuard(t, p,
		httpguard.WithTrustedProxies(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")),
		httpguard.WithCorrelationIDs(func(*http.Request) string { return "corr-1" }),
		httpguard.WithPropagator(propagation.TraceContext{}),
		httpguard.WithRoute("/", httpguard.WithRouteID("shop"), httpguard.WithUpstream("shop-v2"), httpguard.WithAgent("a")))
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	traced := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(trace.ContextWithSpanContext(r.Context(), sc)))
		})
	}
	srv := httptest.NewTLSServer(traced(g.Middleware(http.NotFoundHandler())))
	t.Cleanup(srv.Close)
	c := srv.Client()
	t.Cleanup(c.CloseIdleConnections)
	req, err := http.NewRequest("GET", srv.URL+"/cart", nil)
	require.NoError(t, err)
	req.Header.Set("X-Forwarded-For", "203.0.113.7, 10.1.2.3")
	req.Header.Set("X-Request-Id", "req-9")
	res, err := c.Do(req)
	require.NoError(t, err)
	res.Body.Close()

	s.mu.Lock()
	defer s.mu.Unlock()
	require.Len(t, s.seen, 1)
	md := s.seen[0].GetMetadata()
	assert.Equal(t, "corr-1", md.GetCorrelationId())
	assert.Equal(t, "req-9", md.GetRequestId())
	assert.Equal(t, "203.0.113.7", md.GetClientIp(), "the rightmost untrusted hop")
	assert.Equal(t, "TLS 1.3", md.GetTlsVersion())
	assert.Equal(t, "shop", md.GetRouteId())
	assert.Equal(t, "shop-v2", md.GetUpstreamId())
	assert.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", md.GetTraceparent())
}

// TestUntrustedForwardedFor: X-Forwarded-For from a peer that is not a
// trusted proxy is ignored.
func TestUntrustedForwardedFor(t *testing.T) {
	t.Parallel()
	s := &script{}
	p := newPool(t, map[string]string{"a": startUnix(t, s)})
	g := newGuard(t, p, httpguard.WithTrustedProxies(netip.MustParsePrefix("10.0.0.0/8")),
		httpguard.WithRoute("/", httpguard.WithAgent("a")))
	do(t, newClient(t), "GET", serve(t, g.Middleware(http.NotFoundHandler()))+"/", nil, "X-Forwarded-For", "198.51.100.1")
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Len(t, s.seen, 1)
	assert.Equal(t, "127.0.0.1", s.seen[0].GetMetadata().GetClientIp())
	assert.NotZero(t, s.seen[0].GetMetadata().GetClientPort())
}
