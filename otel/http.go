package otel

import (
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HTTP attribute keys, as the OpenTelemetry HTTP semantic conventions name
// them.
const (
	HTTPMethodKey      = attribute.Key("http.request.method")
	HTTPStatusCodeKey  = attribute.Key("http.response.status_code")
	HTTPRouteKey       = attribute.Key("http.route")
	URLSchemeKey       = attribute.Key("url.scheme")
	URLPathKey         = attribute.Key("url.path")
	ServerAddressKey   = attribute.Key("server.address")
	ClientAddressKey   = attribute.Key("client.address")
	UserAgentKey       = attribute.Key("user_agent.original")
	ProtocolVersionKey = attribute.Key("network.protocol.version")
	ErrorTypeKey       = attribute.Key("error.type")
)

// Middleware returns next traced and measured as an HTTP server: put it in
// front of the net/http layer that feeds the pool (httpguard's middleware,
// a reverse proxy):
//
//	http.ListenAndServe(addr, ic.Middleware(g.Middleware(proxy)))
//
// Each request gets a server span named after its method (and its
// ServeMux pattern, when next is a mux), continuing the client's trace
// context from its headers. The guard sends the request's events with a
// context carrying that span, so the event spans and the agents' spans are
// its children: one trace per request. It records
// http.server.request.duration and http.server.active_requests.
func (i *Interceptor) Middleware(next http.Handler) http.Handler {
	return &httpHandler{i: i, next: next}
}

type httpHandler struct {
	i    *Interceptor
	next http.Handler
}

// httpKey identifies the attributes of a request's duration.
type httpKey struct {
	method, scheme, proto, route string
	status                       int
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := h.i
	start := i.cfg.now()
	ctx := i.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	method, scheme, proto := httpMethod(r.Method), "http", strconv.Itoa(r.ProtoMajor)
	if r.TLS != nil {
		scheme = "https"
	}
	if r.ProtoMajor == 1 {
		proto = "1." + strconv.Itoa(r.ProtoMinor)
	}
	var span trace.Span
	if i.tracer != nil && (!i.spans.idle() || trace.SpanFromContext(ctx).IsRecording()) {
		ctx, span = i.tracer.Start(ctx, spanName(method, ""), serverKind...)
		if span.IsRecording() {
			client, _, _ := net.SplitHostPort(r.RemoteAddr)
			span.SetAttributes(HTTPMethodKey.String(method), URLSchemeKey.String(scheme), URLPathKey.String(r.URL.Path),
				ServerAddressKey.String(r.Host), ClientAddressKey.String(client),
				UserAgentKey.String(r.UserAgent()), ProtocolVersionKey.String(proto))
		}
	}
	measure := i.http != nil && !i.meters.idle()
	var active *measureOpts
	if measure {
		active = i.httpAttrs.get(httpKey{method: method, scheme: scheme}, func() []attribute.KeyValue {
			return []attribute.KeyValue{HTTPMethodKey.String(method), URLSchemeKey.String(scheme)}
		})
		i.http.active.Add(ctx, 1, active.add...)
	}
	sw := &statusWriter{ResponseWriter: w}
	r2 := r.WithContext(ctx)
	returned := false // false in the deferred call: next panicked (an abort, say)
	defer func() {
		status := sw.status
		if status == 0 {
			status = http.StatusOK
			if !returned {
				status = http.StatusInternalServerError
			}
		}
		route := r2.Pattern
		if span != nil {
			if route != "" {
				span.SetName(spanName(method, route))
				span.SetAttributes(HTTPRouteKey.String(route))
			}
			span.SetAttributes(HTTPStatusCodeKey.Int(status))
			if status >= 500 || !returned {
				span.SetStatus(codes.Error, "")
			}
			span.End()
		}
		if measure {
			i.http.active.Add(ctx, -1, active.add...)
			key := httpKey{method: method, scheme: scheme, proto: proto, route: route, status: status}
			set := i.httpAttrs.get(key, func() []attribute.KeyValue { return key.attrs() })
			i.http.duration.Record(ctx, i.cfg.now().Sub(start).Seconds(), set.rec...)
		}
	}()
	h.next.ServeHTTP(sw, r2)
	returned = true
}

// spanName is "{method} {route}", or the method alone without a route
// ("HTTP" for an unknown method), as the conventions name server spans.
func spanName(method, route string) string {
	if method == "_OTHER" {
		method = "HTTP"
	}
	if route == "" {
		return method
	}
	return method + " " + route
}

func (k httpKey) attrs() []attribute.KeyValue {
	kv := []attribute.KeyValue{
		HTTPMethodKey.String(k.method), URLSchemeKey.String(k.scheme), HTTPStatusCodeKey.Int(k.status),
		attribute.String("network.protocol.name", "http"), ProtocolVersionKey.String(k.proto),
	}
	if k.route != "" {
		kv = append(kv, HTTPRouteKey.String(k.route))
	}
	if k.status >= 500 {
		kv = append(kv, ErrorTypeKey.String(strconv.Itoa(k.status)))
	}
	return kv
}

// httpMethod is the http.request.method of m: a known method, else _OTHER
// (the conventions bound the cardinality so).
func httpMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// statusWriter notes the status of the response. Unwrap lets
// http.ResponseController (httpguard, httputil.ReverseProxy) reach Flush
// and Hijack underneath.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// httpInstruments are the net/http layer's instruments.
type httpInstruments struct {
	duration metric.Float64Histogram
	active   metric.Int64UpDownCounter
}

// httpBuckets are the conventions' advice for http.server.request.duration.
var httpBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

func newHTTPInstruments(m metric.Meter) (*httpInstruments, error) {
	var h httpInstruments
	var err error
	h.duration, err = m.Float64Histogram(MetricHTTPDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests."), metric.WithExplicitBucketBoundaries(httpBuckets...))
	if err != nil {
		return nil, err
	}
	h.active, err = m.Int64UpDownCounter(MetricHTTPActive, metric.WithUnit("{request}"),
		metric.WithDescription("Number of active HTTP server requests."))
	if err != nil {
		return nil, err
	}
	return &h, nil
}
