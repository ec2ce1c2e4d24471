package otel

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
)

// reportingHandler is a testHandler that exports its own metrics.
type reportingHandler struct {
	*testHandler
}

func (reportingHandler) Metrics(context.Context) *agentv2.MetricsReport {
	help := "requests seen"
	return &agentv2.MetricsReport{
		Counters: []*agentv2.CounterMetric{{Name: "requests_total", Help: &help, Labels: map[string]string{"route": "/a"}, Value: 42}},
		Gauges:   []*agentv2.GaugeMetric{{Name: "queue_depth", Value: 3.5}},
		Histograms: []*agentv2.HistogramMetric{{
			Name: "latency_seconds", Count: 10, Sum: 1.5,
			Buckets: []*agentv2.HistogramBucket{{Le: 0.1, Count: 4}, {Le: 1, Count: 10}},
		}},
	}
}

func TestAgentMetricsReportBridged(t *testing.T) {
	t.Parallel()
	h := newTestHandler()
	e := newEnv(t, envConfig{
		handler:  reportingHandler{h},
		poolOpts: []pool.Option{pool.WithTransportOptions(transport.WithHealthInterval(20 * time.Millisecond))},
	})
	route := attribute.String("route", "/a")
	require.Eventually(t, func() bool {
		n, ok := intValue(e.collect(), "agentwire.agent.requests_total", agentWAF, route)
		return ok && n == 42
	}, waitFor, 10*time.Millisecond, "bridged counter")
	rm := e.collect()
	g, ok := floatValue(rm, "agentwire.agent.queue_depth", agentWAF)
	require.True(t, ok)
	assert.Equal(t, 3.5, g)
	n, _ := intValue(rm, "agentwire.agent.latency_seconds.count", agentWAF)
	assert.EqualValues(t, 10, n)
	sum, _ := floatValue(rm, "agentwire.agent.latency_seconds.sum", agentWAF)
	assert.Equal(t, 1.5, sum)
	n, _ = intValue(rm, "agentwire.agent.latency_seconds.bucket", agentWAF, attribute.String("le", "0.1"))
	assert.EqualValues(t, 4, n)
	m, _ := findMetric(rm, "agentwire.agent.requests_total")
	assert.Equal(t, "requests seen", m.Description)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestReportBridgeLimits(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	o, err := NewInterceptor(WithoutTracing(), WithMeterProvider(mp), WithClock(clock.Now),
		WithReportLimits(3, 2, time.Minute), WithReportPrefix("agent."))
	require.NoError(t, err)
	collect := func() metricdata.ResourceMetrics {
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(context.Background(), &rm))
		return rm
	}
	counter := func(name, route string, v uint64) *agentv2.CounterMetric {
		return &agentv2.CounterMetric{Name: name, Labels: map[string]string{"route": route}, Value: v}
	}
	dropped := func(rm metricdata.ResourceMetrics, reason string) int64 {
		n, _ := intValue(rm, MetricClientReportDrop, AgentIDKey.String("a1"), DropReasonKey.String(reason))
		return n
	}

	// Five series of one counter: three fit.
	o.bridge.record("a1", &agentv2.MetricsReport{Counters: []*agentv2.CounterMetric{
		counter("hits", "/1", 1), counter("hits", "/2", 2), counter("hits", "/3", 3), counter("hits", "/4", 4), counter("hits", "/5", 5),
	}})
	rm := collect()
	m, ok := findMetric(rm, "agent.hits")
	require.True(t, ok)
	assert.Len(t, m.Data.(metricdata.Sum[int64]).DataPoints, 3)
	assert.EqualValues(t, 2, dropped(rm, DropSeriesLimit))

	// Existing series still update; the cap holds across names and types.
	o.bridge.record("a1", &agentv2.MetricsReport{
		Counters: []*agentv2.CounterMetric{counter("hits", "/1", 10), counter("bad name", "/", 1), counter("bad:name", "/", 1)},
		Gauges:   []*agentv2.GaugeMetric{{Name: "hits", Value: 1}, {Name: "temp", Value: 20}, {Name: "third", Value: 1}},
	})
	rm = collect()
	v, _ := intValue(rm, "agent.hits", AgentIDKey.String("a1"), attribute.String("route", "/1"))
	assert.EqualValues(t, 10, v)
	assert.EqualValues(t, 2, dropped(rm, DropInvalidName))
	assert.EqualValues(t, 1, dropped(rm, DropTypeConflict))
	assert.EqualValues(t, 3, dropped(rm, DropSeriesLimit), "temp is a second instrument but its series does not fit")
	assert.EqualValues(t, 1, dropped(rm, DropInstrumentLimit), "third would be a third instrument")

	// Stale series go away and free their room.
	clock.add(2 * time.Minute)
	_, ok = intValue(collect(), "agent.hits", AgentIDKey.String("a1"))
	assert.False(t, ok, "stale series are gone")
	o.bridge.record("", &agentv2.MetricsReport{AgentId: "a2", Gauges: []*agentv2.GaugeMetric{{Name: "temp", Value: 21}}})
	g, ok := floatValue(collect(), "agent.temp", AgentIDKey.String("a2"))
	require.True(t, ok, "the report's agent_id labels it when the options name no agent")
	assert.Equal(t, 21.0, g)
}

func TestPoolGauges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ctx := context.Background()
	_, err := e.pool.Send(ctx, "waf", headers("o1", "/allow"))
	require.NoError(t, err)
	_, err = e.pool.SendSession(ctx, "waf", "ws-1", headers("o2", "/allow"))
	require.NoError(t, err)

	rm := e.collect()
	n, ok := intValue(rm, MetricClientAffinitySize, agentWAF)
	require.True(t, ok)
	assert.EqualValues(t, 2, n, "two open requests")
	n, _ = intValue(rm, MetricClientSessions, agentWAF)
	assert.EqualValues(t, 1, n)
	n, _ = intValue(rm, MetricClientBreaker, agentWAF, BreakerStateKey.String("closed"))
	assert.EqualValues(t, 1, n)
	n, _ = intValue(rm, MetricClientBreaker, agentWAF, BreakerStateKey.String("open"))
	assert.Zero(t, n)

	_, err = e.pool.Send(ctx, "waf", complete("o1"))
	require.NoError(t, err)
	n, _ = intValue(e.collect(), MetricClientAffinitySize, agentWAF)
	assert.EqualValues(t, 1, n)

	_, err = e.pool.SendSession(ctx, "waf", "ws-1", complete("o2"))
	require.NoError(t, err)
	require.NoError(t, e.pool.Shutdown(ctx))
	_, ok = intValue(e.collect(), MetricClientAffinitySize, agentWAF)
	assert.False(t, ok, "no longer observed once the pool shut down")
}

// TestReportBridgeCollectsWhileCreating: reports that create instruments
// while the SDK collects (holding its pipeline lock and running the
// bridge's callbacks) neither deadlock nor show a report half stored.
func TestReportBridgeCollectsWhileCreating(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	o, err := NewInterceptor(WithoutTracing(), WithMeterProvider(mp), WithReportLimits(10000, 1000, time.Minute))
	require.NoError(t, err)

	const reports = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range reports {
			n := strconv.Itoa(i)
			o.bridge.record("a1", &agentv2.MetricsReport{
				Counters: []*agentv2.CounterMetric{{Name: "first_" + n, Value: 1}},
				Gauges:   []*agentv2.GaugeMetric{{Name: "last_" + n, Value: 1}},
			})
		}
	}()
	collected := 0
	deadline := time.After(30 * time.Second)
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		case <-deadline:
			t.Fatalf("record and collect deadlocked after %d collections", collected)
		default:
		}
		rm := collectWithin(t, reader, 10*time.Second)
		collected++
		// A report's samples are stored together: every first_N seen
		// comes with its last_N.
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if n, ok := strings.CutPrefix(m.Name, "agentwire.agent.first_"); ok {
					_, found := findMetric(rm, "agentwire.agent.last_"+n)
					require.True(t, found, "report %s seen half stored", n)
				}
			}
		}
	}
	assert.Positive(t, collected)
	rm := collectWithin(t, reader, 10*time.Second)
	_, ok := findMetric(rm, "agentwire.agent.last_"+strconv.Itoa(reports-1))
	assert.True(t, ok, "every report bridged")
}

// collectWithin collects, failing the test if the SDK does not return
// within d (a deadlock would otherwise hang the test binary).
func collectWithin(t *testing.T, reader *sdkmetric.ManualReader, d time.Duration) metricdata.ResourceMetrics {
	t.Helper()
	type result struct {
		rm  metricdata.ResourceMetrics
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		r.err = reader.Collect(context.Background(), &r.rm)
		ch <- r
	}()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		return r.rm
	case <-time.After(d):
		t.Fatalf("collection did not return within %v: deadlocked with a report", d)
	}
	return metricdata.ResourceMetrics{}
}
