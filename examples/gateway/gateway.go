package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// chunkSize is how much of a body goes to the agent per event.
const chunkSize = 16 << 10

// Gateway is a reverse proxy that consults one agent, through a pool, on
// every exchange: request headers, request body chunks, response headers,
// response body chunks, and request-complete. It is safe for concurrent use.
type Gateway struct {
	pool    *pool.Pool
	agentID string
	proxy   *httputil.ReverseProxy
	logger  *slog.Logger
	seq     atomic.Uint64
	now     func() time.Time
}

// NewGateway proxies to upstream, consulting agentID in p.
func NewGateway(p *pool.Pool, agentID string, upstream *url.URL, logger *slog.Logger) *Gateway {
	g := &Gateway{pool: p, agentID: agentID, logger: logger, now: time.Now}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			r.SetXForwarded()
		},
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		FlushInterval:  -1, // stream, so response-body inspection sees chunks as they come
	}
	return g
}

// exchange is the per-request state the gateway keeps in the context.
type exchange struct {
	corr     string
	session  string // sticky session id for upgrades, "" otherwise
	start    time.Time
	received atomic.Uint64
	sent     atomic.Uint64
}

type exchangeKey struct{}

// agentBlocked carries a decision that must replace the upstream's answer.
type agentBlocked struct{ resp *agentv2.AgentResponse }

func (e *agentBlocked) Error() string { return "blocked by agent" }

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &exchange{corr: fmt.Sprintf("gw-%d-%d", g.now().UnixNano(), g.seq.Add(1)), start: g.now()}
	if isUpgrade(r) {
		x.session = x.corr
		defer g.pool.EndSession(g.agentID, x.session)
	}
	ctx := context.WithValue(r.Context(), exchangeKey{}, x)
	r = r.WithContext(ctx)
	status := http.StatusBadGateway
	defer func() { g.complete(x, status) }()

	resp, err := g.send(ctx, x, requestHeadersEvent(r, x.corr))
	if err != nil {
		g.logger.Warn("agent failed on request headers; failing closed", "correlation_id", x.corr, "err", err)
		status = http.StatusServiceUnavailable
		http.Error(w, "agent unavailable\n", status)
		return
	}
	if resp.GetDecision() == nil {
		// The pool fails answers without a decision; a missing decision is
		// never an allow.
		status = http.StatusBadGateway
		http.Error(w, "agent gave no decision\n", status)
		return
	}
	if st, ok := writeDecision(w, resp); ok {
		status = st
		return
	}
	applyOps(r.Header, resp.GetRequestHeaders())
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &inspectedBody{g: g, ctx: ctx, x: x, r: r.Body, response: false}
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	g.proxy.ServeHTTP(rec, r)
	status = rec.status
}

// send is the one place the gateway calls the pool.
func (g *Gateway) send(ctx context.Context, x *exchange, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	if x.session != "" {
		return g.pool.SendSession(ctx, g.agentID, x.session, ev)
	}
	return g.pool.Send(ctx, g.agentID, ev)
}

func (g *Gateway) complete(x *exchange, status int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := g.send(ctx, x, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{
		CorrelationId: x.corr, StatusCode: uint32(status),
		DurationMs:    uint64(g.now().Sub(x.start).Milliseconds()),
		BytesReceived: x.received.Load(), BytesSent: x.sent.Load(),
	}}})
	if err != nil {
		g.logger.Debug("request-complete not delivered", "correlation_id", x.corr, "err", err)
	}
}

func (g *Gateway) modifyResponse(res *http.Response) error {
	x := res.Request.Context().Value(exchangeKey{}).(*exchange)
	ev := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: &agentv2.ResponseHeadersEvent{
		CorrelationId: x.corr, StatusCode: uint32(res.StatusCode), Headers: headerList(res.Header),
	}}}
	resp, err := g.send(res.Request.Context(), x, ev)
	if err != nil {
		return fmt.Errorf("agent on response headers: %w", err)
	}
	if resp.GetBlock() != nil || resp.GetRedirect() != nil || resp.GetChallenge() != nil {
		return &agentBlocked{resp: resp}
	}
	applyOps(res.Header, resp.GetResponseHeaders())
	if res.StatusCode != http.StatusSwitchingProtocols && res.Body != nil && res.Body != http.NoBody {
		res.Body = &inspectedBody{g: g, ctx: res.Request.Context(), x: x, r: res.Body, response: true}
	}
	return nil
}

func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var blocked *agentBlocked
	if errors.As(err, &blocked) {
		if st, ok := writeDecision(w, blocked.resp); ok {
			if rec, ok := w.(*statusRecorder); ok {
				rec.status = st
			}
			return
		}
	}
	g.logger.Warn("proxy error", "err", err)
	w.WriteHeader(http.StatusBadGateway)
}

// inspectedBody streams a body to the agent chunk by chunk as the proxy
// reads (request) or writes (response) it. A block decision ends the body
// with an error: before the response started, the client gets the agent's
// answer; after, the connection is cut.
type inspectedBody struct {
	g        *Gateway
	ctx      context.Context
	x        *exchange
	r        io.ReadCloser
	response bool
	index    uint32
	buf      []byte
}

func (b *inspectedBody) Read(p []byte) (int, error) {
	if len(p) > chunkSize {
		p = p[:chunkSize]
	}
	n, err := b.r.Read(p)
	if n > 0 || errors.Is(err, io.EOF) {
		chunk := &agentv2.BodyChunkEvent{CorrelationId: b.x.corr, ChunkIndex: b.index, Data: p[:n], IsLast: errors.Is(err, io.EOF)}
		b.index++
		ev := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: chunk}}
		if b.response {
			b.x.sent.Add(uint64(n))
			ev.Message = &agentv2.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: chunk}
		} else {
			b.x.received.Add(uint64(n))
		}
		resp, aerr := b.g.send(b.ctx, b.x, ev)
		if aerr != nil {
			return 0, fmt.Errorf("agent on body chunk: %w", aerr)
		}
		if resp.GetBlock() != nil {
			return 0, &agentBlocked{resp: resp}
		}
	}
	return n, err
}

func (b *inspectedBody) Close() error { return b.r.Close() }

// writeDecision answers the client when the agent decided for it.
func writeDecision(w http.ResponseWriter, resp *agentv2.AgentResponse) (int, bool) {
	switch {
	case resp.GetBlock() != nil:
		b := resp.GetBlock()
		for _, h := range b.GetHeaders() {
			w.Header().Set(h.GetName(), h.GetValue())
		}
		status := int(b.GetStatus())
		if status < 100 || status > 599 {
			status = http.StatusForbidden
		}
		if w.Header().Get("content-type") == "" {
			w.Header().Set("content-type", "text/plain; charset=utf-8")
		}
		if a := resp.GetAudit(); a != nil && len(a.GetTags()) > 0 {
			w.Header().Set("x-agentwire-audit", strings.Join(a.GetTags(), ","))
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, b.GetBody())
		return status, true
	case resp.GetRedirect() != nil:
		status := int(resp.GetRedirect().GetStatus())
		if status < 300 || status > 399 {
			status = http.StatusFound
		}
		w.Header().Set("location", resp.GetRedirect().GetUrl())
		w.WriteHeader(status)
		return status, true
	case resp.GetChallenge() != nil:
		c := resp.GetChallenge()
		w.Header().Set("x-agentwire-challenge", c.GetChallengeType())
		w.Header().Set("content-type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = fmt.Fprintf(w, "challenge required: %s\n", c.GetChallengeType())
		return http.StatusForbidden, true
	}
	return 0, false
}

func applyOps(h http.Header, ops []*agentv2.HeaderOp) {
	for _, op := range ops {
		switch {
		case op.GetSet() != nil:
			h.Set(op.GetSet().GetName(), op.GetSet().GetValue())
		case op.GetAdd() != nil:
			h.Add(op.GetAdd().GetName(), op.GetAdd().GetValue())
		case op.GetRemove() != "":
			h.Del(op.GetRemove())
		}
	}
}

func requestHeadersEvent(r *http.Request, corr string) *agentv2.ProxyToAgent {
	host, port, _ := strings.Cut(r.RemoteAddr, ":")
	if i := strings.LastIndex(r.RemoteAddr, ":"); i >= 0 {
		host, port = r.RemoteAddr[:i], r.RemoteAddr[i+1:]
	}
	p, _ := strconv.Atoi(port)
	hdrs := headerList(r.Header)
	hdrs = append(hdrs, &agentv2.Header{Name: "host", Value: r.Host})
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{
			CorrelationId: corr, RequestId: corr, ClientIp: strings.Trim(host, "[]"), ClientPort: uint32(p),
			Protocol: r.Proto, TimestampMs: uint64(time.Now().UnixMilli()),
		},
		Method: r.Method, Uri: r.URL.RequestURI(), HttpVersion: r.Proto, Headers: hdrs,
	}}}
}

func headerList(h http.Header) []*agentv2.Header {
	out := make([]*agentv2.Header, 0, len(h))
	for name, values := range h {
		for _, v := range values {
			out = append(out, &agentv2.Header{Name: strings.ToLower(name), Value: v})
		}
	}
	return out
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("upgrade"), "websocket") &&
		strings.Contains(strings.ToLower(r.Header.Get("connection")), "upgrade")
}

// statusRecorder remembers the status written, for request-complete.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Hijack and Flush (upgrades, streaming).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
