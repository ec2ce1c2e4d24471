package httpguard

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"go.opentelemetry.io/otel/propagation"
)

// Events is a set of events an agent receives.
type Events uint8

// The events a guard sends. Request headers always go to every agent of a
// chain: they open the request at the agent.
const (
	RequestHeaders Events = 1 << iota
	RequestBody
	ResponseHeaders
	ResponseBody
	// RequestComplete ends the request at the agent with its outcome. An
	// agent without it gets a cancel (CANCEL_REASON_UNSPECIFIED) instead,
	// which ends its state and the pool's pin as cheaply.
	RequestComplete
	// WebSocketFrames: the frames of an upgraded websocket, both ways (see
	// the package doc).
	WebSocketFrames
)

// Defaults of an agent in a chain.
const (
	DefaultTimeout      = time.Second
	DefaultFailStatus   = http.StatusServiceUnavailable
	DefaultMaxBodyBytes = 1 << 20
	DefaultChunkSize    = 16 << 10
)

// Option configures a [Guard].
type Option interface{ applyGuard(*config) }

// RouteOption configures one route.
type RouteOption interface{ applyRoute(*route) }

// AgentOption configures one agent of a chain.
type AgentOption interface{ applyAgent(*agentSpec) }

type guardOption func(*config)

func (f guardOption) applyGuard(c *config) { f(c) }

type routeOption func(*route)

func (f routeOption) applyRoute(r *route) { f(r) }

type agentOption func(*agentSpec)

func (f agentOption) applyAgent(a *agentSpec) { f(a) }

type config struct {
	routes     []*route
	trusted    []netip.Prefix
	logger     *slog.Logger
	now        func() time.Time
	newID      func(*http.Request) string
	challenge  ChallengeResponder
	propagator propagation.TextMapPropagator
	chunkSize  int
	auditHdr   string
}

// WithRoute guards requests that match pattern, a pattern as
// [http.ServeMux] understands it ("/api/", "POST /login",
// "example.com/{path...}"), with a chain of agents. Of the pattern
// routes, the most specific match wins, as in ServeMux; the route id is the
// pattern unless [WithRouteID] sets one.
func WithRoute(pattern string, opts ...RouteOption) Option {
	return guardOption(func(c *config) { c.routes = append(c.routes, newRoute(pattern, pattern, nil, opts)) })
}

// WithRouteFunc guards requests for which match reports true. Function
// routes are tried in the order given, before the pattern routes.
func WithRouteFunc(id string, match func(*http.Request) bool, opts ...RouteOption) Option {
	return guardOption(func(c *config) { c.routes = append(c.routes, newRoute(id, "", match, opts)) })
}

// WithTrustedProxies makes the client address the last address of
// X-Forwarded-For that is not in prefixes, when the connection comes from
// one of them; otherwise the connection's address is the client's.
func WithTrustedProxies(prefixes ...netip.Prefix) Option {
	return guardOption(func(c *config) { c.trusted = append(c.trusted, prefixes...) })
}

// WithLogger sets where decisions, audit metadata and agent failures are
// logged (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return guardOption(func(c *config) { c.logger = l })
}

// WithClock sets the guard's clock (default time.Now).
func WithClock(now func() time.Time) Option {
	return guardOption(func(c *config) { c.now = now })
}

// WithCorrelationIDs sets how a request's correlation id is made (default:
// a random prefix chosen once and a counter). Ids must be unique among the
// requests in flight.
func WithCorrelationIDs(newID func(*http.Request) string) Option {
	return guardOption(func(c *config) { c.newID = newID })
}

// WithChallenge sets the responder for challenge decisions (default
// [DefaultChallenge]).
func WithChallenge(r ChallengeResponder) Option {
	return guardOption(func(c *config) { c.challenge = r })
}

// WithPropagator sets the propagator that writes the request context's
// trace into the request metadata (traceparent, tracestate); default
// otel.GetTextMapPropagator() at New.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return guardOption(func(c *config) { c.propagator = p })
}

// WithChunkSize sets the largest body chunk sent in one event (default
// 16 KiB).
func WithChunkSize(n int) Option {
	return guardOption(func(c *config) { c.chunkSize = n })
}

// WithAuditHeader makes the guard's own answers (block, redirect,
// challenge, failing closed) carry the request's audit tags, comma
// separated, in response header name: for debugging, as it shows clients
// what the agents found. Off by default.
func WithAuditHeader(name string) Option {
	return guardOption(func(c *config) { c.auditHdr = name })
}

// WithAgent appends agent agentID of the guard's pool to the route's
// chain.
func WithAgent(agentID string, opts ...AgentOption) RouteOption {
	return routeOption(func(r *route) {
		a := agentSpec{
			id: agentID, events: RequestHeaders | RequestComplete, timeout: DefaultTimeout,
			failStatus: DefaultFailStatus, maxBody: DefaultMaxBodyBytes, stats: new(counters),
		}
		for _, o := range opts {
			o.applyAgent(&a)
		}
		a.events |= RequestHeaders
		r.agents = append(r.agents, a)
	})
}

// WithRouteID sets the route id sent in the request metadata.
func WithRouteID(id string) RouteOption {
	return routeOption(func(r *route) { r.id = id })
}

// WithUpstream sets the upstream id sent in the request metadata.
func WithUpstream(id string) RouteOption {
	return routeOption(func(r *route) { r.upstream = id })
}

// WithEvents sets the events the agent receives (default RequestHeaders |
// RequestComplete); request headers are always included. Of these it gets
// only those its connections declared in their handshakes (see
// pool.Capabilities): all of them if it declares no event types.
func WithEvents(e Events) AgentOption {
	return agentOption(func(a *agentSpec) { a.events = e })
}

// WithTimeout bounds the agent's answer to each event (default 1 s).
func WithTimeout(d time.Duration) AgentOption {
	return agentOption(func(a *agentSpec) { a.timeout = d })
}

// FailOpen makes a failure of the agent (error, timeout, unavailable)
// count and let the request continue without it; the agent's id is listed
// in [Audit.FailedOpen].
func FailOpen() AgentOption {
	return agentOption(func(a *agentSpec) { a.failOpen = true })
}

// FailClosed makes a failure of the agent answer the client with status
// (the default, with 503).
func FailClosed(status int) AgentOption {
	return agentOption(func(a *agentSpec) { a.failOpen, a.failStatus = false, status })
}

// WithMaxBodyBytes bounds how many bytes of each body the agent inspects
// (default 1 MiB); the rest passes uninspected. It also bounds what the
// guard buffers while the agent answers needs_more.
func WithMaxBodyBytes(n int64) AgentOption {
	return agentOption(func(a *agentSpec) { a.maxBody = n })
}

// Parallel makes the agent run at the same time as the agent before it in
// the chain: consecutive agents marked Parallel form one group with the
// agent that precedes them.
func Parallel() AgentOption {
	return agentOption(func(a *agentSpec) { a.parallel = true })
}

func (c *config) validate() error {
	if len(c.routes) == 0 {
		return fmt.Errorf("httpguard: no routes")
	}
	if c.chunkSize <= 0 {
		return fmt.Errorf("httpguard: chunk size %d", c.chunkSize)
	}
	for _, rt := range c.routes {
		if len(rt.agents) == 0 {
			return fmt.Errorf("httpguard: route %q has no agents", rt.id)
		}
		for _, a := range rt.agents {
			if a.id == "" || a.timeout <= 0 || a.maxBody < 0 || a.failStatus < 100 || a.failStatus > 599 {
				return fmt.Errorf("httpguard: route %q: agent %q: invalid id, timeout, body limit or status", rt.id, a.id)
			}
		}
	}
	return nil
}
