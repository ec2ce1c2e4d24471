package caddyagentwire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"

	"github.com/agentwire/agentwire/httpguard"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the http.handlers.agentwire module: the requests it gets go
// through its chain of agents before the next handler sees them, and the
// responses before the client does. Its config is fixed once provisioned;
// it is then safe for concurrent use.
type Handler struct {
	// Agents is the chain, asked in order.
	Agents []Agent `json:"agents"`
	// RouteID and Upstream are sent to the agents in each request's
	// metadata (default route id "caddy").
	RouteID  string `json:"route_id,omitempty"`
	Upstream string `json:"upstream,omitempty"`
	// AuditHeader, when set, names a response header that carries the
	// agents' audit tags on the guard's own answers (for debugging).
	AuditHeader string `json:"audit_header,omitempty"`
	// ChunkSize is the largest body chunk sent in one event (default 16 KiB).
	ChunkSize int `json:"chunk_size,omitempty"`
	// DrainTimeout bounds how long a pool that is no longer used waits for
	// its in-flight events before it closes (default 5s).
	DrainTimeout caddy.Duration `json:"drain_timeout,omitempty"`
	// Reverse is a listener that agents dial, for the chain's agents whose
	// endpoint is "reverse" (or any agent of the chain, as more connections).
	Reverse *Reverse `json:"reverse,omitempty"`

	auth     reverseAuth // Reverse's tokens, from their placeholders
	claimed  *reverseUse // Reverse's address, claimed for this config
	guard    *httpguard.Guard
	key      string
	logger   *slog.Logger
	registry *prometheus.Registry
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// CaddyModule returns the module's information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.agentwire", New: func() caddy.Module { return new(Handler) }}
}

// Provision checks the config, then connects the handler to its agents'
// shared pool (creating it when no other handler uses the same agents),
// whose reverse listener the agentwire app starts with the config. When
// it fails, Caddy calls Cleanup.
func (h *Handler) Provision(ctx caddy.Context) error {
	if err := h.validate(); err != nil {
		return err
	}
	h.logger = ctx.Slogger()
	if h.Reverse != nil {
		auth, err := h.Reverse.resolve()
		if err != nil {
			return err
		}
		h.auth = auth
	}
	key, err := h.poolKey()
	if err != nil {
		return err
	}
	if h.Reverse != nil {
		if err := h.claimAddress(ctx, key); err != nil {
			return err
		}
	}
	sp, err := h.acquirePool(key, h.logger)
	if err != nil {
		return err
	}
	h.key = key
	if h.Reverse != nil {
		app, err := ctx.App("agentwire")
		if err != nil {
			return fmt.Errorf("agentwire: %w", err)
		}
		a, ok := app.(*App)
		if !ok {
			return fmt.Errorf("agentwire: app %T is not agentwire's", app)
		}
		a.add(sp)
	}
	route := h.RouteID
	if route == "" {
		route = "caddy"
	}
	ropts := []httpguard.RouteOption{httpguard.WithRouteID(route)}
	if h.Upstream != "" {
		ropts = append(ropts, httpguard.WithUpstream(h.Upstream))
	}
	for i := range h.Agents {
		ropts = append(ropts, httpguard.WithAgent(h.Agents[i].ID, h.Agents[i].chainOptions()...))
	}
	opts := []httpguard.Option{
		httpguard.WithRouteFunc(route, func(*http.Request) bool { return true }, ropts...),
		httpguard.WithLogger(h.logger),
		// Caddy's tracing directive puts its span in the request context:
		// the agents' events carry it as W3C trace context.
		httpguard.WithPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
	}
	if h.ChunkSize > 0 {
		opts = append(opts, httpguard.WithChunkSize(h.ChunkSize))
	}
	if h.AuditHeader != "" {
		opts = append(opts, httpguard.WithAuditHeader(h.AuditHeader))
	}
	h.guard, err = httpguard.New(sp.Pool, opts...)
	if err != nil {
		return fmt.Errorf("agentwire: %w", err)
	}
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := registerMetrics(reg, h, sp); err != nil {
			return fmt.Errorf("agentwire: metrics: %w", err)
		}
		h.registry = reg
	}
	return nil
}

// Validate rejects a bad config, naming the directive and the agent.
func (h *Handler) Validate() error { return h.validate() }

// Cleanup waits briefly for the guard's last request_complete events and
// releases the pool; its last user drains and closes it.
func (h *Handler) Cleanup() error {
	var errs []error
	if h.registry != nil {
		unregisterMetrics(h.registry, h)
		h.registry = nil
	}
	if h.guard != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := h.guard.Close(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, fmt.Errorf("agentwire: %w", err))
		}
	}
	h.releaseAddress()
	if h.key != "" {
		if _, err := pools.Delete(h.key); err != nil {
			errs = append(errs, err)
		}
		h.key = ""
	}
	return errors.Join(errs...)
}

// ServeHTTP guards next. An error of next that is not the guard's own
// answer is answered here, inside the guard, with its status (see the
// package doc), and logged.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r = withClientIP(r)
	h.guard.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := next.ServeHTTP(w, r)
		if err == nil || errors.Is(err, httpguard.ErrBlocked) || errors.Is(err, httpguard.ErrBodyLimit) {
			return
		}
		if a, _ := httpguard.AuditFrom(r.Context()); a.DecidedBy != "" {
			return // the guard answers
		}
		httpguard.ReportUpstreamError(r.Context(), err)
		status := http.StatusInternalServerError
		if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok && he.StatusCode != 0 {
			status = he.StatusCode
		}
		level := slog.LevelDebug
		if status >= 500 {
			level = slog.LevelError
		}
		h.logger.Log(r.Context(), level, "agentwire: next handler failed", "status", status, "error", err)
		w.WriteHeader(status)
	})).ServeHTTP(w, r)
	return nil
}

// withClientIP gives the guard Caddy's client address, which honours the
// server's trusted_proxies, when it is not the connection's.
func withClientIP(r *http.Request) *http.Request {
	s, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return r
	}
	if peer, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && peer.Addr().Unmap() == ip.Unmap() {
		return r
	}
	return r.WithContext(httpguard.ContextWithClientIP(r.Context(), ip))
}
