package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool/balancer"
	"github.com/agentwire/agentwire/pool/breaker"
	"github.com/agentwire/agentwire/pool/resolver"
	"github.com/agentwire/agentwire/transport"
)

// Defaults of a [Pool] and its agents.
const (
	DefaultConnections      = 4
	DefaultMaxConcurrency   = 100
	DefaultQueueWait        = 50 * time.Millisecond
	DefaultFlowControlWait  = 100 * time.Millisecond
	DefaultFailureThreshold = 3
	DefaultBreakerFailures  = 5
	DefaultBreakerWindow    = 10 * time.Second
	DefaultBreakerCooldown  = 5 * time.Second
	DefaultMaxAffinities    = 100_000
	DefaultAffinityTTL      = 5 * time.Minute
	DefaultMaxSessions      = 10_000
	DefaultSessionTTL       = 5 * time.Minute
	DefaultDNSInterval      = resolver.DefaultInterval
	DefaultDrainTimeout     = 30 * time.Second
	DefaultBackoffBase      = 100 * time.Millisecond
	DefaultBackoffMax       = 30 * time.Second
	DefaultProbeInterval    = time.Second
	DefaultProbeTimeout     = time.Second
	DefaultConfigPushTTL    = 30 * time.Second
)

// Dialer opens one connection to an agent endpoint. The default is
// [transport.Dial], which picks the transport from the endpoint's scheme; the
// pool itself never looks at transports.
type Dialer func(ctx context.Context, endpoint string, opts ...transport.Option) (transport.Conn, error)

// Resolver looks up the addresses of a host name for DNS discovery
// (network "ip4" or "ip6"). *net.Resolver implements it.
type Resolver = resolver.Lookup

// ConfigUpdateFunc answers an agent's request to change its configuration;
// agentID names the agent in the pool. A nil response rejects the request.
type ConfigUpdateFunc func(ctx context.Context, agentID string, req *agentv2.ConfigUpdateRequest) *agentv2.ConfigUpdateResponse

// Option configures a [Pool] in [New].
type Option interface{ applyPool(*config) }

// AgentOption configures one agent in [Pool.AddAgent].
type AgentOption interface{ applyAgent(*agentConfig) }

// SharedOption is both an [Option] and an [AgentOption]: given to [New] it
// sets the default for every agent, given to [Pool.AddAgent] it overrides
// that default for one agent.
type SharedOption interface {
	Option
	AgentOption
}

type sharedOption func(*agentConfig)

func (f sharedOption) applyPool(c *config)       { f(&c.agent) }
func (f sharedOption) applyAgent(c *agentConfig) { f(c) }

type poolOption func(*config)

func (f poolOption) applyPool(c *config) { f(c) }

type agentOption func(*agentConfig)

func (f agentOption) applyAgent(c *agentConfig) { f(c) }

// agentConfig is what can differ between agents.
type agentConfig struct {
	conns            int
	policy           string
	builder          balancer.Builder
	maxConcurrency   int
	queueWait        time.Duration
	flowMode         FlowControlMode
	flowWait         time.Duration
	failureThreshold int
	breaker          breaker.Config
	maxReverse       int
	transportOpts    []transport.Option
	liveness         time.Duration
	maxAffinities    int
	affinityTTL      time.Duration
	maxSessions      int
	sessionTTL       time.Duration
	dnsInterval      time.Duration
	drainTimeout     time.Duration
}

type config struct {
	agent agentConfig
	now   func() time.Time
	// nanos reads the clock as nanoseconds from an arbitrary origin, for
	// durations and expiry: one monotonic read, half the cost of now.
	nanos          func() int64
	rand           func() uint64
	dialer         Dialer
	resolver       Resolver
	logger         *slog.Logger
	backoffBase    time.Duration
	backoffMax     time.Duration
	probeInterval  time.Duration
	probeTimeout   time.Duration
	onConfigUpdate ConfigUpdateFunc
	configPushTTL  time.Duration
	interceptors   []Interceptor
}

func defaultConfig() config {
	origin := time.Now()
	return config{
		agent: agentConfig{
			conns:            DefaultConnections,
			policy:           balancer.LeastInFlight,
			maxConcurrency:   DefaultMaxConcurrency,
			queueWait:        DefaultQueueWait,
			flowMode:         FailClosed,
			flowWait:         DefaultFlowControlWait,
			failureThreshold: DefaultFailureThreshold,
			breaker: breaker.Config{
				Failures: DefaultBreakerFailures,
				Window:   DefaultBreakerWindow,
				Cooldown: DefaultBreakerCooldown,
			},
			maxReverse:    DefaultConnections,
			liveness:      transport.DefaultLivenessInterval,
			maxAffinities: DefaultMaxAffinities,
			affinityTTL:   DefaultAffinityTTL,
			maxSessions:   DefaultMaxSessions,
			sessionTTL:    DefaultSessionTTL,
			drainTimeout:  DefaultDrainTimeout,
		},
		now:           time.Now,
		nanos:         func() int64 { return int64(time.Since(origin)) },
		rand:          rand.Uint64,
		dialer:        transport.Dial,
		logger:        slog.Default(),
		backoffBase:   DefaultBackoffBase,
		backoffMax:    DefaultBackoffMax,
		probeInterval: DefaultProbeInterval,
		probeTimeout:  DefaultProbeTimeout,
		configPushTTL: DefaultConfigPushTTL,
	}
}

func (c *config) validate() error {
	var errs []error
	if c.now == nil || c.rand == nil || c.dialer == nil || c.logger == nil {
		errs = append(errs, errors.New("clock, rand, dialer and logger must not be nil"))
	}
	if c.backoffBase <= 0 || c.backoffMax < c.backoffBase {
		errs = append(errs, fmt.Errorf("backoff: want 0 < base <= max, got %v and %v", c.backoffBase, c.backoffMax))
	}
	if c.probeInterval <= 0 || c.probeTimeout <= 0 {
		errs = append(errs, errors.New("probe interval and timeout must be positive"))
	}
	if slices.Contains(c.interceptors, nil) {
		errs = append(errs, errors.New("interceptors must not be nil"))
	}
	if c.configPushTTL <= 0 {
		errs = append(errs, errors.New("config push expiry must be positive"))
	}
	if err := c.agent.validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return agentwire.NewError(agentwire.CodeInvalidArgument, errors.Join(errs...))
	}
	return nil
}

func (c *agentConfig) validate() error {
	var errs []error
	if c.conns <= 0 {
		errs = append(errs, errors.New("connections per agent must be positive"))
	}
	if c.builder == nil {
		b, ok := balancer.Get(c.policy)
		if !ok {
			errs = append(errs, fmt.Errorf("unknown balancing policy %q", c.policy))
		}
		c.builder = b
	}
	if c.maxConcurrency <= 0 || c.queueWait < 0 {
		errs = append(errs, errors.New("concurrency limit must be positive and queue wait not negative"))
	}
	if c.flowMode < FailClosed || c.flowMode > WaitAndRetry || c.flowWait < 0 {
		errs = append(errs, errors.New("invalid flow-control mode or wait"))
	}
	if c.failureThreshold <= 0 {
		errs = append(errs, errors.New("failure threshold must be positive"))
	}
	if c.breaker.Failures > 0 && (c.breaker.Window <= 0 || c.breaker.Cooldown <= 0) {
		errs = append(errs, errors.New("circuit breaker window and cool-down must be positive"))
	}
	if c.maxReverse < 0 || c.maxAffinities <= 0 || c.affinityTTL <= 0 || c.maxSessions <= 0 || c.sessionTTL <= 0 {
		errs = append(errs, errors.New("table sizes and TTLs must be positive"))
	}
	if c.dnsInterval < 0 || c.drainTimeout < 0 {
		errs = append(errs, errors.New("DNS interval and drain timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// WithConnections sets how many connections the pool keeps to each agent
// instance (default 4).
func WithConnections(n int) SharedOption {
	return sharedOption(func(c *agentConfig) { c.conns = n })
}

// WithPolicy chooses a built-in balancing policy by name:
// [balancer.LeastInFlight] (default), [balancer.RoundRobin],
// [balancer.Weighted] or [balancer.Random]. The default keeps
// events off a connection whose agent answers slowly, where round robin
// would keep sending it its share and pile events up behind it.
func WithPolicy(name string) SharedOption {
	return sharedOption(func(c *agentConfig) { c.policy, c.builder = name, nil })
}

// WithBalancer sets a custom balancing policy.
func WithBalancer(b balancer.Builder) SharedOption {
	return sharedOption(func(c *agentConfig) { c.builder = b })
}

// WithMaxConcurrency caps the events in flight on one connection (default
// 100, lowered to the agent's declared max_concurrency when that is smaller).
// An event that finds the connection full waits up to wait, honouring its
// context, then fails with ResourceExhausted ([ErrConcurrencyLimit]);
// wait 0 fails at once.
func WithMaxConcurrency(n int, wait time.Duration) SharedOption {
	return sharedOption(func(c *agentConfig) { c.maxConcurrency, c.queueWait = n, wait })
}

// WithFlowControl sets what happens to an event whose connection the agent
// has paused (default [FailClosed]). wait bounds [WaitAndRetry].
func WithFlowControl(mode FlowControlMode, wait time.Duration) SharedOption {
	return sharedOption(func(c *agentConfig) { c.flowMode, c.flowWait = mode, wait })
}

// WithFailureThreshold sets how many consecutive transport failures take a
// connection out of service until a probe ping succeeds (default 3).
// Errors the agent reported do not count, nor do caller cancellations and
// deadlines, unless the agent sent nothing at all while the call waited
// (see [WithLiveness]).
func WithFailureThreshold(n int) SharedOption {
	return sharedOption(func(c *agentConfig) { c.failureThreshold = n })
}

// WithCircuitBreaker configures the per-agent circuit breaker: it opens
// after failures transport failures within window, refuses new requests for
// cooldown, then lets one probe request through (half-open) and closes if it
// succeeds. A lost connection is one failure, however many requests it
// held. Default 5 failures in 10 s, 5 s cool-down.
func WithCircuitBreaker(failures int, window, cooldown time.Duration) SharedOption {
	return sharedOption(func(c *agentConfig) {
		c.breaker = breaker.Config{Failures: failures, Window: window, Cooldown: cooldown}
	})
}

// WithoutCircuitBreaker disables the circuit breaker.
func WithoutCircuitBreaker() SharedOption {
	return sharedOption(func(c *agentConfig) { c.breaker = breaker.Config{} })
}

// WithMaxReverseConns caps each agent's reverse connections (default
// [DefaultConnections]): [Pool.AdoptConn] refuses more, and a listener built
// with [Pool.ReverseOptions] refuses them at registration.
func WithMaxReverseConns(n int) SharedOption {
	return sharedOption(func(c *agentConfig) { c.maxReverse = n })
}

// WithTransportOptions adds options for every connection the pool dials
// (timeouts, TLS, proxy id...). The pool sets the status and
// config-update handlers itself.
func WithTransportOptions(opts ...transport.Option) SharedOption {
	return sharedOption(func(c *agentConfig) {
		c.transportOpts = append(append([]transport.Option(nil), c.transportOpts...), opts...)
	})
}

// WithLiveness sets how connections find a hung agent (default
// [transport.DefaultLivenessInterval] and [transport.DefaultLivenessTimeout]):
// a connection with events outstanding that received nothing for interval
// pings the agent, and closes if nothing arrives within timeout; the pool
// then redials it (see [transport.WithLiveness]). The pool also counts a
// caller's deadline or cancellation as a failure of the connection (see
// [WithFailureThreshold]; once per connection for the breaker) when the
// call waited twice interval or longer and the connection received nothing
// meanwhile, not even a pong; otherwise such ends stay neutral.
// interval <= 0 disables both.
// Set it here rather than through [WithTransportOptions], which only
// reaches the connections.
func WithLiveness(interval, timeout time.Duration) SharedOption {
	return sharedOption(func(c *agentConfig) {
		c.liveness = interval
		c.transportOpts = append(append([]transport.Option(nil), c.transportOpts...), transport.WithLiveness(interval, timeout))
	})
}

// WithAffinity bounds the table of open requests per agent (default 100 000
// entries) and sets how long an idle entry lives (default 5 min): the
// pool's periodic sweep ([WithProbeInterval]) removes a request idle for
// the TTL, so it goes between one TTL and one TTL plus two probe intervals
// after its last event (its events read no clock to stamp it).
func WithAffinity(maxEntries int, ttl time.Duration) SharedOption {
	return sharedOption(func(c *agentConfig) { c.maxAffinities, c.affinityTTL = maxEntries, ttl })
}

// WithStickySessions bounds the sticky sessions per agent (default 10 000)
// and sets how long an idle session lives (default 5 min).
func WithStickySessions(maxSessions int, ttl time.Duration) SharedOption {
	return sharedOption(func(c *agentConfig) { c.maxSessions, c.sessionTTL = maxSessions, ttl })
}

// WithDrainTimeout bounds how long a connection taken out of service (its
// DNS record disappeared) may finish its in-flight events before it is
// closed (default 30 s).
func WithDrainTimeout(d time.Duration) SharedOption {
	return sharedOption(func(c *agentConfig) { c.drainTimeout = d })
}

// WithDNSDiscovery resolves the endpoint's host name every interval and
// keeps connections to each address it returns, adding and removing
// instances as the records change. The endpoint's scheme and port apply to
// every address. A "dns:///name:port?scheme=grpc" endpoint implies it.
func WithDNSDiscovery(interval time.Duration) AgentOption {
	return agentOption(func(c *agentConfig) { c.dnsInterval = interval })
}

// WithClock injects the clock (tests). It drives TTLs, the breaker and
// latencies.
func WithClock(now func() time.Time) Option {
	return poolOption(func(c *config) {
		c.now = now
		c.nanos = func() int64 { return now().UnixNano() }
	})
}

// WithRand injects the random source used by balancers and backoff jitter;
// it must be safe for concurrent use.
func WithRand(r func() uint64) Option {
	return poolOption(func(c *config) { c.rand = r })
}

// WithDialer replaces [transport.Dial].
func WithDialer(d Dialer) Option {
	return poolOption(func(c *config) { c.dialer = d })
}

// WithResolver sets the resolver of DNS discovery (default net.DefaultResolver).
func WithResolver(r Resolver) Option {
	return poolOption(func(c *config) { c.resolver = r })
}

// WithLogger sets where the pool logs connection changes.
func WithLogger(l *slog.Logger) Option {
	return poolOption(func(c *config) { c.logger = l })
}

// WithReconnectBackoff sets the reconnection backoff: it starts at base, doubles on
// each failed attempt up to max, with ±20% jitter, and never gives up.
func WithReconnectBackoff(base, maxDelay time.Duration) Option {
	return poolOption(func(c *config) { c.backoffBase, c.backoffMax = base, maxDelay })
}

// WithProbeInterval sets how often the pool pings connections taken out
// after transport failures, expires idle affinities and sessions, and
// refreshes load-based weights; timeout bounds each ping.
func WithProbeInterval(interval, timeout time.Duration) Option {
	return poolOption(func(c *config) { c.probeInterval, c.probeTimeout = interval, timeout })
}

// WithConfigUpdateHandler answers agents' config-update requests.
func WithConfigUpdateHandler(f ConfigUpdateFunc) Option {
	return poolOption(func(c *config) { c.onConfigUpdate = f })
}

// WithConfigPushExpiry bounds how long [Pool.PushConfig] retries one
// instance before it gives up on it (default 30 s).
func WithConfigPushExpiry(d time.Duration) Option {
	return poolOption(func(c *config) { c.configPushTTL = d })
}
