package otel

import (
	"errors"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// instrumentationName is the instrumentation scope of tracers and meters.
const instrumentationName = "github.com/agentwire/agentwire/otel"

// Metric names of the proxy side (client), the agent side (server) and the
// net/http layer ([Interceptor.Middleware]). The durations and the HTTP
// metrics follow the OpenTelemetry semantic conventions; the others are
// agentwire's own.
const (
	MetricClientDuration     = "rpc.client.call.duration"
	MetricClientEvents       = "agentwire.client.events"
	MetricClientInFlight     = "agentwire.client.events.in_flight"
	MetricClientFailOpen     = "agentwire.client.fail_open"
	MetricClientFlowControl  = "agentwire.client.flow_control.pauses"
	MetricClientFlowWait     = "agentwire.client.flow_control.wait"
	MetricClientAffinityMiss = "agentwire.client.affinity.misses"
	MetricClientAffinitySize = "agentwire.client.affinity.size"
	MetricClientSessions     = "agentwire.client.sticky_sessions.size"
	MetricClientConnections  = "agentwire.client.connections"
	MetricClientReconnects   = "agentwire.client.reconnects"
	MetricClientBreaker      = "agentwire.client.breaker.state"
	MetricClientBreakerOpen  = "agentwire.client.breaker.opened"
	MetricClientReportDrop   = "agentwire.client.agent_metrics.dropped"
	MetricServerDuration     = "rpc.server.call.duration"
	MetricHTTPDuration       = "http.server.request.duration"
	MetricHTTPActive         = "http.server.active_requests"
)

// durationBuckets suit agent round trips: 50 µs to 30 s.
var durationBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// clientInstruments are the proxy side's synchronous instruments.
type clientInstruments struct {
	duration metric.Float64Histogram
	events   metric.Int64Counter
	// inFlight and connections are observed from the Interceptor's own
	// counters: an Add at each end of an event would cost two more
	// measurements per event, and both would drift below zero for the
	// events and connections that started before a global meter provider
	// was installed.
	inFlight     metric.Int64ObservableUpDownCounter
	failOpen     metric.Int64Counter
	flow         metric.Int64Counter
	flowWait     metric.Float64Histogram
	affinityMiss metric.Int64Counter
	connections  metric.Int64ObservableUpDownCounter
	reconnects   metric.Int64Counter
	reportDrop   metric.Int64Counter
	// Observed from the pools the Interceptor watches (Interceptor.Watch).
	affinitySize  metric.Int64ObservableGauge
	sessions      metric.Int64ObservableGauge
	breaker       metric.Int64ObservableGauge
	breakerOpened metric.Int64ObservableCounter
}

func newClientInstruments(m metric.Meter) (*clientInstruments, error) {
	var (
		c    clientInstruments
		err  error
		errs []error
	)
	add := func(e error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	c.duration, err = m.Float64Histogram(MetricClientDuration, metric.WithUnit("s"),
		metric.WithDescription("Time from an event entering the pool to its decision (an agentwire event is an RPC)."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	add(err)
	c.events, err = m.Int64Counter(MetricClientEvents, metric.WithUnit("{event}"),
		metric.WithDescription("Events sent to agents, by outcome."))
	add(err)
	c.inFlight, err = m.Int64ObservableUpDownCounter(MetricClientInFlight, metric.WithUnit("{event}"),
		metric.WithDescription("Events in the pool's pipeline."))
	add(err)
	c.failOpen, err = m.Int64Counter(MetricClientFailOpen, metric.WithUnit("{event}"),
		metric.WithDescription("Events the pool allowed without asking the agent (fail-open)."))
	add(err)
	c.flow, err = m.Int64Counter(MetricClientFlowControl, metric.WithUnit("{event}"),
		metric.WithDescription("Events that met a connection the agent had paused, by flow-control mode and result."))
	add(err)
	c.flowWait, err = m.Float64Histogram(MetricClientFlowWait, metric.WithUnit("s"),
		metric.WithDescription("Time events waited for an agent to resume."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	add(err)
	c.affinityMiss, err = m.Int64Counter(MetricClientAffinityMiss, metric.WithUnit("{event}"),
		metric.WithDescription("Events of a request that found no connection pinned for it."))
	add(err)
	c.connections, err = m.Int64ObservableUpDownCounter(MetricClientConnections, metric.WithUnit("{connection}"),
		metric.WithDescription("Pool connections, by state."))
	add(err)
	c.reconnects, err = m.Int64Counter(MetricClientReconnects, metric.WithUnit("{connection}"),
		metric.WithDescription("Connections opened to replace one that was lost."))
	add(err)
	c.reportDrop, err = m.Int64Counter(MetricClientReportDrop, metric.WithUnit("{sample}"),
		metric.WithDescription("Samples of agents' metrics reports not bridged, by reason."))
	add(err)
	c.affinitySize, err = m.Int64ObservableGauge(MetricClientAffinitySize, metric.WithUnit("{request}"),
		metric.WithDescription("Open requests pinned to a connection."))
	add(err)
	c.sessions, err = m.Int64ObservableGauge(MetricClientSessions, metric.WithUnit("{session}"),
		metric.WithDescription("Sticky sessions bound to a connection."))
	add(err)
	c.breaker, err = m.Int64ObservableGauge(MetricClientBreaker, metric.WithUnit("{state}"),
		metric.WithDescription("1 for the circuit breaker's current state, 0 for the others."))
	add(err)
	c.breakerOpened, err = m.Int64ObservableCounter(MetricClientBreakerOpen, metric.WithUnit("{open}"),
		metric.WithDescription("Times the circuit breaker opened."))
	add(err)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

// attrCache keeps the measurement options (attribute sets) of the hot
// path, as the option slices of each kind of call, so that recording
// allocates nothing after the first event of each combination. Its keys
// come from the pool's agents and fixed tables, so it stays small.
type attrCache[K comparable] struct {
	m sync.Map // K -> *measureOpts
}

// measureOpts is one attribute set as options for Add, Record and Observe.
type measureOpts struct {
	add []metric.AddOption
	rec []metric.RecordOption
	obs []metric.ObserveOption
}

func (c *attrCache[K]) get(k K, build func() []attribute.KeyValue) *measureOpts {
	if o, ok := c.m.Load(k); ok {
		return o.(*measureOpts)
	}
	opt := metric.WithAttributeSet(attribute.NewSet(build()...))
	o := &measureOpts{add: []metric.AddOption{opt}, rec: []metric.RecordOption{opt}, obs: []metric.ObserveOption{opt}}
	c.m.Store(k, o)
	return o
}

// eventKey identifies the attributes of an event's metrics.
type eventKey struct {
	agent, transport string
	kind             agentv2.EventType
	outcome          string
}
