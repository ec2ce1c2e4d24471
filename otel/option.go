package otel

import (
	"errors"
	"fmt"
	"time"

	otelapi "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/transport"
)

// Defaults of [NewInterceptor].
const (
	// DefaultReportSeries caps the series bridged from agents' metrics
	// reports, over all agents.
	DefaultReportSeries = 2000
	// DefaultReportInstruments caps the distinct metric names bridged.
	DefaultReportInstruments = 256
	// DefaultReportStale is how long a bridged series lives without a new
	// report.
	DefaultReportStale = 5 * time.Minute
	// DefaultReportPrefix is put before the names agents report.
	DefaultReportPrefix = "agentwire.agent."
	// DefaultTraceContexts caps the requests whose trace context each side
	// remembers for their non-header events.
	DefaultTraceContexts = 100_000
	// DefaultTraceContextTTL is how long an idle remembered request lives.
	DefaultTraceContextTTL = 5 * time.Minute
)

// An Option configures an [Interceptor].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagator     propagation.TextMapPropagator
	serviceName    string
	now            func() time.Time
	blockIsError   bool
	dialSpans      bool

	reportSeries      int
	reportInstruments int
	reportStale       time.Duration
	reportPrefix      string

	traceContexts   int
	traceContextTTL time.Duration
}

func newConfig(opts []Option) (config, error) {
	c := config{
		tracerProvider:    otelapi.GetTracerProvider(),
		meterProvider:     otelapi.GetMeterProvider(),
		propagator:        otelapi.GetTextMapPropagator(),
		serviceName:       transport.DefaultServiceName,
		now:               time.Now,
		reportSeries:      DefaultReportSeries,
		reportInstruments: DefaultReportInstruments,
		reportStale:       DefaultReportStale,
		reportPrefix:      DefaultReportPrefix,
		traceContexts:     DefaultTraceContexts,
		traceContextTTL:   DefaultTraceContextTTL,
	}
	for _, o := range opts {
		o.apply(&c)
	}
	var errs []error
	if c.tracerProvider == nil || c.meterProvider == nil || c.propagator == nil || c.now == nil {
		errs = append(errs, errors.New("tracer provider, meter provider, propagator and clock must not be nil"))
	}
	if c.serviceName == "" {
		errs = append(errs, errors.New("empty service name"))
	}
	if c.reportSeries < 0 || c.reportInstruments < 0 || c.reportStale <= 0 {
		errs = append(errs, fmt.Errorf("metrics report limits: want series, instruments >= 0 and staleness > 0, got %d, %d, %v",
			c.reportSeries, c.reportInstruments, c.reportStale))
	}
	if c.traceContexts < 0 || c.traceContextTTL <= 0 {
		errs = append(errs, fmt.Errorf("trace context cache: want entries >= 0 and ttl > 0, got %d, %v", c.traceContexts, c.traceContextTTL))
	}
	if len(errs) > 0 {
		return c, agentwire.NewError(agentwire.CodeInvalidArgument, fmt.Errorf("otel: %w", errors.Join(errs...)))
	}
	return c, nil
}

// tracingOff reports whether spans are disabled outright, so that the hot
// path can skip the tracer.
func (c *config) tracingOff() bool {
	_, off := c.tracerProvider.(tracenoop.TracerProvider)
	return off
}

// metricsOff reports whether metrics are disabled outright.
func (c *config) metricsOff() bool {
	_, off := c.meterProvider.(metricnoop.MeterProvider)
	return off
}

// WithTracerProvider sets where spans go (default: the global
// otel.GetTracerProvider at construction).
func WithTracerProvider(p trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tracerProvider = p })
}

// WithMeterProvider sets where metrics go (default: the global
// otel.GetMeterProvider at construction).
func WithMeterProvider(p metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = p })
}

// WithPropagator sets how trace context is written into and read from
// events and stream headers (default: the global otel.GetTextMapPropagator
// at construction). agentwire's event fields carry the W3C traceparent and
// tracestate keys only; other keys a propagator sets are dropped.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) { c.propagator = p })
}

// WithoutTracing disables spans. Trace context already in the caller's
// context is still propagated to agents.
func WithoutTracing() Option {
	return WithTracerProvider(tracenoop.NewTracerProvider())
}

// WithoutMetrics disables metrics.
func WithoutMetrics() Option {
	return WithMeterProvider(metricnoop.NewMeterProvider())
}

// WithServiceName sets rpc.service and the span name prefix (default
// transport.DefaultServiceName, "sentinel.agent.v2.AgentServiceV2"); set
// it to the name given to transport.WithServiceName or
// agent.WithServiceName.
func WithServiceName(name string) Option {
	return optionFunc(func(c *config) { c.serviceName = name })
}

// WithBlockAsError marks spans whose decision is block, redirect or
// challenge with an Error status. By default a decision is a successful
// answer and leaves the status unset; see [SpanStatus].
func WithBlockAsError() Option {
	return optionFunc(func(c *config) { c.blockIsError = true })
}

// WithDialSpans gives each dial of a pool's connection a client span,
// "agentwire.Dial", which the gRPC and Connect transports carry in their
// stream headers. Off by default: a pool dials from no request's context,
// so each dial would be a trace of its own.
func WithDialSpans() Option {
	return optionFunc(func(c *config) { c.dialSpans = true })
}

// WithReportLimits bounds the bridge of agents' metrics reports: at most
// series series (all agents together) and instruments metric names; a
// series not reported for stale disappears. Reports beyond the caps are
// dropped and counted in agentwire.client.agent_metrics.dropped. Defaults:
// [DefaultReportSeries], [DefaultReportInstruments], [DefaultReportStale].
func WithReportLimits(series, instruments int, stale time.Duration) Option {
	return optionFunc(func(c *config) { c.reportSeries, c.reportInstruments, c.reportStale = series, instruments, stale })
}

// WithReportPrefix sets what goes before the metric names agents report
// ([DefaultReportPrefix]).
func WithReportPrefix(prefix string) Option {
	return optionFunc(func(c *config) { c.reportPrefix = prefix })
}

// WithTraceContextCache bounds how many requests each side remembers the
// trace context of (for their events after the headers) and how long an
// idle one is kept. Defaults: [DefaultTraceContexts],
// [DefaultTraceContextTTL]; 0 entries disables the caches.
func WithTraceContextCache(entries int, ttl time.Duration) Option {
	return optionFunc(func(c *config) { c.traceContexts, c.traceContextTTL = entries, ttl })
}

// WithClock injects the clock used for report staleness, the trace
// context cache and the dates of the pool side's span events (tests).
func WithClock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.now = now })
}
