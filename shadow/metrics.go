package shadow

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metrics counts comparisons in OpenTelemetry. The attribute sets of both
// orders of the pair (Promote swaps them) are built once: a set per count
// would cost more than the count.
type metrics struct {
	c    metric.Int64Counter
	pair [2]string
	// opts[o][i] are the attributes of result i, o = 1 once promoted.
	opts [2][len(results)]metric.AddOption
}

func newMetrics(mp metric.MeterProvider, pair [2]string) (*metrics, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	c, err := mp.Meter("github.com/agentwire/agentwire/shadow").Int64Counter("agentwire.shadow.comparisons",
		metric.WithDescription("events mirrored to a shadow agent, by how its answer compared with the primary's"))
	if err != nil {
		return nil, err
	}
	m := &metrics{c: c, pair: pair}
	for o, p := range [2][2]string{pair, {pair[1], pair[0]}} {
		for i, r := range results {
			m.opts[o][i] = metric.WithAttributeSet(attribute.NewSet(
				attribute.String("agentwire.agent.id", p[0]),
				attribute.String("agentwire.shadow.id", p[1]),
				attribute.String("agentwire.shadow.result", string(r))))
		}
	}
	return m, nil
}

// add counts result i for pair, the interceptor's pair in either order.
func (m *metrics) add(pair [2]string, i int) {
	o := 0
	if pair != m.pair {
		o = 1
	}
	m.c.Add(context.Background(), 1, m.opts[o][i])
}

func (m *metrics) close() {}
