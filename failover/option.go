package failover

import (
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Option configures an [Interceptor].
type Option interface{ applyFailover(*config) }

// HedgeOption configures a [Hedger].
type HedgeOption interface{ applyHedge(*hedgeConfig) }

// CommonOption configures both an [Interceptor] and a [Hedger].
type CommonOption interface {
	Option
	HedgeOption
}

// shared are the settings of both.
type shared struct {
	now           func() time.Time
	meterProvider metric.MeterProvider
}

type config struct {
	shared
	fallback   map[string]string // agent id -> fallback agent id ("" for none)
	perRequest int               // bytes kept per request
	total      int64             // bytes kept in all
	budgetMax  float64
	ratio      float64
	ttl        time.Duration
}

type hedgeConfig struct {
	shared
	agents   map[string]bool
	delay    time.Duration // fixed; 0 for the quantile
	quantile float64
	initial  time.Duration // the delay until enough latencies are known
	fraction float64
	burst    float64
}

type optionFunc func(*config)

func (f optionFunc) applyFailover(c *config) { f(c) }

type hedgeFunc func(*hedgeConfig)

func (f hedgeFunc) applyHedge(c *hedgeConfig) { f(c) }

type commonFunc func(*shared)

func (f commonFunc) applyFailover(c *config)   { f(&c.shared) }
func (f commonFunc) applyHedge(c *hedgeConfig) { f(&c.shared) }

// WithAgents makes these agents' requests fail over to their other
// connections.
func WithAgents(ids ...string) Option {
	return optionFunc(func(c *config) {
		for _, id := range ids {
			if _, ok := c.fallback[id]; !ok {
				c.fallback[id] = ""
			}
		}
	})
}

// WithFallback makes agentID's requests fail over to its other
// connections, then to agent fallbackID.
func WithFallback(agentID, fallbackID string) Option {
	return optionFunc(func(c *config) { c.fallback[agentID] = fallbackID })
}

// WithRequestBuffer bounds the bytes kept per request (default 64 KiB):
// past it the request can no longer fail over.
func WithRequestBuffer(n int) Option { return optionFunc(func(c *config) { c.perRequest = n }) }

// WithTotalBuffer bounds the bytes kept for all requests (default 64 MiB).
// Requests reserve it in steps of n/1024, at most 16 KiB, so one may be
// refused up to a step before the bytes it keeps reach the bound.
func WithTotalBuffer(n int64) Option { return optionFunc(func(c *config) { c.total = n }) }

// WithRetryBudget sets the failover token bucket (default 10 and 0.1):
// each request earns ratio tokens up to max, each failover spends one.
func WithRetryBudget(max, ratio float64) Option {
	return optionFunc(func(c *config) { c.budgetMax, c.ratio = max, ratio })
}

// WithIdleTimeout forgets a request not heard of for this long (default
// 2 minutes): its caller never ended it. Requests are swept as others
// start, at most every half timeout, so one goes between d and twice d
// after its last event.
func WithIdleTimeout(d time.Duration) Option { return optionFunc(func(c *config) { c.ttl = d }) }

// WithHedgedAgents hedges these agents' request headers.
func WithHedgedAgents(ids ...string) HedgeOption {
	return hedgeFunc(func(c *hedgeConfig) {
		for _, id := range ids {
			c.agents[id] = true
		}
	})
}

// WithHedgeDelay hedges after a fixed delay rather than a quantile of
// recent latencies.
func WithHedgeDelay(d time.Duration) HedgeOption {
	return hedgeFunc(func(c *hedgeConfig) { c.delay = d })
}

// WithHedgeQuantile hedges after the q-quantile of the agent's recent
// request-header latencies (default 0.95), and after initial until enough
// are known (default 50 ms).
func WithHedgeQuantile(q float64, initial time.Duration) HedgeOption {
	return hedgeFunc(func(c *hedgeConfig) { c.quantile, c.initial = q, initial })
}

// WithHedgeBudget hedges at most this fraction of requests, plus a burst
// (default 0.05 and 10).
func WithHedgeBudget(fraction, burst float64) HedgeOption {
	return hedgeFunc(func(c *hedgeConfig) { c.fraction, c.burst = fraction, burst })
}

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) CommonOption { return commonFunc(func(s *shared) { s.now = now }) }

// WithMeterProvider sets where the counters go (default: the
// OpenTelemetry global meter provider).
func WithMeterProvider(p metric.MeterProvider) CommonOption {
	return commonFunc(func(s *shared) { s.meterProvider = p })
}
