package shadow

import (
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Option configures an [Interceptor].
type Option interface{ apply(*config) }

type config struct {
	rate          float64
	maxInFlight   int
	timeout       time.Duration
	logSize       int
	seed          uint64
	now           func() time.Time
	meterProvider metric.MeterProvider
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithSampleRate mirrors this fraction of requests, 0 to 1 (default 1).
func WithSampleRate(rate float64) Option { return optionFunc(func(c *config) { c.rate = rate }) }

// WithMaxInFlight bounds the mirrored events waiting for the shadow's
// answer (default 1024): past it, while the shadow falls behind, events
// are dropped and counted.
func WithMaxInFlight(n int) Option { return optionFunc(func(c *config) { c.maxInFlight = n }) }

// WithTimeout bounds each shadow call (default 5 s): a call is abandoned,
// and counted as the shadow's error, after one to two timeouts (the calls
// share a deadline, renewed when less than d is left: a timer per call
// would cost more than the rest of a mirror).
func WithTimeout(d time.Duration) Option { return optionFunc(func(c *config) { c.timeout = d }) }

// WithLogSize sets how many recent disagreements are kept (default 256).
func WithLogSize(n int) Option { return optionFunc(func(c *config) { c.logSize = n }) }

// WithSeed sets the sampling hash's seed (default random), so tests and a
// fleet of proxies can sample the same requests.
func WithSeed(seed uint64) Option { return optionFunc(func(c *config) { c.seed = seed }) }

// WithClock sets the clock of the disagreement log (default time.Now).
func WithClock(now func() time.Time) Option { return optionFunc(func(c *config) { c.now = now }) }

// WithMeterProvider sets where the comparison counts go (default: the
// OpenTelemetry global meter provider).
func WithMeterProvider(p metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = p })
}
