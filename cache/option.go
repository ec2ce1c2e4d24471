package cache

import (
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Option configures an [Interceptor].
type Option interface{ apply(*config) }

type config struct {
	store         Store
	maxEntries    int
	now           func() time.Time
	maxScopes     int
	flushOnReady  bool
	meterProvider metric.MeterProvider
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// DefaultMaxEntries bounds the in-process layer.
const DefaultMaxEntries = 100_000

// WithStore adds a shared store (a [RedisStore]) behind the in-process
// layer, so that a fleet of proxies shares decisions.
func WithStore(s Store) Option { return optionFunc(func(c *config) { c.store = s }) }

// WithMaxEntries bounds the in-process layer (DefaultMaxEntries).
func WithMaxEntries(n int) Option { return optionFunc(func(c *config) { c.maxEntries = n }) }

// WithFlushOnConnect drops an agent's cached decisions whenever one of its
// connections completes a new handshake (a restarted agent may decide
// differently), for agents whose decisions live no longer than their
// process.
func WithFlushOnConnect() Option { return optionFunc(func(c *config) { c.flushOnReady = true }) }

// WithClock sets the interceptor's clock (default time.Now).
func WithClock(now func() time.Time) Option { return optionFunc(func(c *config) { c.now = now }) }

// WithMeterProvider sets where cache metrics go (default: the
// OpenTelemetry global meter provider).
func WithMeterProvider(p metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = p })
}
