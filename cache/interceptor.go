package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
)

// Interceptor is a pool interceptor answering request_headers events
// from cached decisions (see the package doc for the rules). It is safe
// for concurrent use.
type Interceptor struct {
	cfg    config
	local  *local
	shared Store // nil without WithStore
	flight flights
	served *servedSet // requests served from the cache
	stats  statsByAgent
}

var (
	_ pool.Interceptor        = (*Interceptor)(nil)
	_ pool.UntimedInterceptor = (*Interceptor)(nil)
	_ pool.ConnInterceptor    = (*Interceptor)(nil)
)

// NewInterceptor returns an Interceptor; give it to pool.WithInterceptors,
// after (inside) a tracing interceptor so that hits mark its spans.
func NewInterceptor(opts ...Option) (*Interceptor, error) {
	cfg := config{maxEntries: DefaultMaxEntries, now: time.Now, maxScopes: 8}
	for _, o := range opts {
		o.apply(&cfg)
	}
	l, err := newLocal(cfg.maxEntries, cfg.now)
	if err != nil {
		return nil, err
	}
	ic := &Interceptor{cfg: cfg, local: l, shared: cfg.store}
	ic.served = newServedSet(cfg.maxEntries)
	if err := ic.stats.register(cfg.meterProvider); err != nil {
		ic.Close()
		return nil, err
	}
	return ic, nil
}

// Close stops the interceptor's goroutines and metrics; a store given
// with WithStore is the caller's to close. Close the pool first.
func (ic *Interceptor) Close() {
	ic.local.close()
	ic.stats.unregister()
}

// Untimed implements pool.UntimedInterceptor: it never reads Call.Duration.
func (*Interceptor) Untimed() {}

// WrapSend implements pool.Interceptor.
func (ic *Interceptor) WrapSend(next pool.SendFunc) pool.SendFunc {
	return func(ctx context.Context, c *pool.Call) (*agentv2.AgentResponse, error) {
		if c.Type == agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS {
			return ic.headers(ctx, c, next)
		}
		if c.CorrelationID != "" {
			if k := (servedKey{c.AgentID, c.CorrelationID}); ic.served.has(k) {
				if c.Type == agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE {
					ic.served.remove(k)
				}
				ic.stats.of(c.AgentID).followers.Add(1)
				return &agentv2.AgentResponse{CorrelationId: c.CorrelationID, Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}, nil
			}
		}
		return next(ctx, c)
	}
}

// headers answers a request_headers event from the cache, or asks the
// agent and caches its answer.
func (ic *Interceptor) headers(ctx context.Context, c *pool.Call, next pool.SendFunc) (*agentv2.AgentResponse, error) {
	ev := c.Event.GetRequestHeaders()
	st := ic.stats.of(c.AgentID)
	now := ic.cfg.now()
	body := 0 // whether the request has a body: 0 not looked at yet, 1 no, 2 yes
	var stale *localEntry
	var buf [512]byte // the full key, on the stack
	for _, sc := range ic.scopesOf(ctx, c.AgentID, now, st) {
		le := ic.lookup(ctx, c.AgentID, sc.appendKey(buf[:0], c.AgentID, ev), st)
		if le == nil {
			continue
		}
		e := le.e
		if !e.BodyNotInspected {
			if body == 0 {
				body = 1
				if hasBody(ev) {
					body = 2
				}
			}
			if body == 2 {
				continue
			}
		}
		if now.Before(e.Expires) {
			st.hits.Add(1)
			return ic.serve(ctx, c, le, "hit"), nil
		}
		if now.Before(e.StaleUntil) && stale == nil {
			stale = le
		}
	}
	st.misses.Add(1)

	fp := fingerprint(c.AgentID, ev)
	f, lead := ic.flight.join(fp)
	if !lead {
		st.joins.Add(1)
		if err := f.wait(ctx); err != nil {
			return nil, agentwire.WrapContextError(err)
		}
		if f.err == nil && cacheable(f.resp) {
			resp := f.resp.CloneVT()
			resp.CorrelationId = c.CorrelationID
			return resp, nil
		}
		// Not cacheable (or failed): this request is the agent's to see.
	}
	resp, err := next(ctx, c)
	if lead {
		ic.flight.land(fp, f, resp, err)
	}
	if err == nil {
		ic.store1(ctx, c.AgentID, ev, resp, now, st)
		return resp, nil
	}
	if stale != nil && unavailable(ctx, err) {
		st.staleHits.Add(1)
		return ic.serve(ctx, c, stale, "stale"), nil
	}
	return nil, err
}

// lookup returns the entry stored under the full key k: from the
// in-process layer, or from the shared store into that layer.
func (ic *Interceptor) lookup(ctx context.Context, agentID string, k []byte, st *agentState) *localEntry {
	if le := ic.local.get(k); le != nil || ic.shared == nil {
		return le
	}
	e, err := ic.shared.Get(ctx, agentID, Key(sha256.Sum256(k)))
	if err != nil {
		st.storeErrors.Add(1)
	}
	if e == nil {
		return nil
	}
	return ic.local.set(agentID, k, e)
}

// scopeRefresh is how often an interceptor reads the store's scope list
// (decisions other proxies stored may use scopes this one never saw).
const scopeRefresh = time.Second

// scopesOf returns the scopes to try for agentID, reading the store's list
// at most once per scopeRefresh.
func (ic *Interceptor) scopesOf(ctx context.Context, agentID string, now time.Time, st *agentState) []*scope {
	a := &st.scopes
	last := a.refreshed.Load()
	if ic.shared != nil && now.UnixNano()-last >= int64(scopeRefresh) && a.refreshed.CompareAndSwap(last, now.UnixNano()) {
		shared, err := ic.shared.Scopes(ctx, agentID)
		if err != nil {
			st.storeErrors.Add(1)
		}
		a.merge(shared, ic.cfg.maxScopes)
	}
	return a.get()
}

// serve answers c from e: a copy, with the caller's correlation id, and
// the rest of the request answered by the cache too.
func (ic *Interceptor) serve(ctx context.Context, c *pool.Call, le *localEntry, how string) *agentv2.AgentResponse {
	resp := copyAnswer(le.e.Response, le.copy, c.CorrelationID)
	if resp.GetAllow() != nil && c.CorrelationID != "" {
		ic.served.add(servedKey{c.AgentID, c.CorrelationID})
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("agentwire.cache", how))
	}
	return resp
}

// store1 caches resp if its agent allowed it.
func (ic *Interceptor) store1(ctx context.Context, agentID string, ev *agentv2.RequestHeadersEvent, resp *agentv2.AgentResponse, now time.Time, st *agentState) {
	if !cacheable(resp) {
		return
	}
	d := resp.GetCache()
	sc, isNew := st.scopes.add(d.GetScope(), ic.cfg.maxScopes)
	if isNew && ic.shared != nil && ic.shared.AddScope(ctx, agentID, d.GetScope()) != nil {
		st.storeErrors.Add(1)
	}
	e := &Entry{Response: resp.CloneVT(), Tags: d.GetTags(), BodyNotInspected: d.GetBodyNotInspected()}
	e.Response.Cache = nil
	e.Expires = now.Add(time.Duration(d.GetTtlMs()) * time.Millisecond)
	e.StaleUntil = e.Expires.Add(time.Duration(d.GetStaleMs()) * time.Millisecond)
	var buf [512]byte
	k := sc.appendKey(buf[:0], agentID, ev)
	ic.local.set(agentID, k, e)
	if ic.shared != nil {
		if err := ic.shared.Set(ctx, agentID, Key(sha256.Sum256(k)), e); err != nil {
			st.storeErrors.Add(1)
			return
		}
	}
	st.stores.Add(1)
}

// cacheable reports whether resp is a decision its agent lets the proxy
// reuse.
func cacheable(resp *agentv2.AgentResponse) bool {
	return resp.GetDecision() != nil && resp.GetError() == nil && resp.GetCache().GetTtlMs() > 0
}

// unavailable reports whether err means the agent could not be asked (no
// ready connection, breaker open, timeout) rather than the caller giving
// up or the agent answering an error.
func unavailable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || agentwire.IsWireError(err) {
		return false
	}
	switch agentwire.CodeOf(err) {
	case agentwire.CodeUnavailable, agentwire.CodeDeadlineExceeded:
		return true
	}
	return errors.Is(err, pool.ErrCircuitOpen)
}

// Purge drops agentID's cached decisions carrying any of tags, or all of
// them without tags.
func (ic *Interceptor) Purge(ctx context.Context, agentID string, tags ...string) error {
	ic.stats.of(agentID).purges.Add(1)
	ic.local.purge(agentID, tags)
	if ic.shared == nil {
		return nil
	}
	return ic.shared.Purge(ctx, agentID, tags)
}

// ConfigUpdateHandler returns a pool config-update handler that answers
// agents' CachePurge requests and hands every other request to next (nil:
// refused). Give it to pool.WithConfigUpdateHandler.
func (ic *Interceptor) ConfigUpdateHandler(next pool.ConfigUpdateFunc) pool.ConfigUpdateFunc {
	return func(ctx context.Context, agentID string, req *agentv2.ConfigUpdateRequest) *agentv2.ConfigUpdateResponse {
		p := req.GetCachePurge()
		if p == nil {
			if next == nil {
				return nil
			}
			return next(ctx, agentID, req)
		}
		resp := &agentv2.ConfigUpdateResponse{RequestId: req.GetRequestId(), Accepted: true, TimestampMs: uint64(ic.cfg.now().UnixMilli())}
		if err := ic.Purge(ctx, agentID, p.GetTags()...); err != nil {
			msg := err.Error()
			resp.Accepted, resp.Error = false, &msg
		}
		return resp
	}
}

// TransportOptions implements pool.ConnInterceptor: none.
func (ic *Interceptor) TransportOptions(string) []transport.Option { return nil }

// ConnStateChange implements pool.ConnInterceptor: with WithFlushOnConnect,
// a connection that completed a handshake flushes its agent's decisions.
func (ic *Interceptor) ConnStateChange(agentID, _ string, _, to pool.ConnState) {
	if ic.cfg.flushOnReady && to == pool.ConnReady {
		_ = ic.Purge(context.Background(), agentID)
	}
}
