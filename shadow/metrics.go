package shadow

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metrics counts comparisons in OpenTelemetry.
type metrics struct {
	c metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	c, err := mp.Meter("github.com/agentwire/agentwire/shadow").Int64Counter("agentwire.shadow.comparisons",
		metric.WithDescription("events mirrored to a shadow agent, by how its answer compared with the primary's"))
	if err != nil {
		return nil, err
	}
	return &metrics{c: c}, nil
}

func (m *metrics) add(pair [2]string, r Result) {
	m.c.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String("agentwire.agent.id", pair[0]),
		attribute.String("agentwire.shadow.id", pair[1]),
		attribute.String("agentwire.shadow.result", string(r))))
}

func (m *metrics) close() {}
