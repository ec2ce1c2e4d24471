package refenc

import (
	"math"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Control messages. The reference proxy sends cancels and pings as JSON
// on every connection (json! maps, sorted keys), and its agents echo a
// ping's payload as the pong. It reads health and flow control as
// integers (state, action) and names nothing else, so agentwire writes
// them as named maps in both encodings; metrics and config updates follow
// their serde structs.

// Cancel reasons: the reference's client::CancelReason cast to i32 counts
// from 0, agentwire's enum from 1.
func cancelOut(c *agentv2.CancelRequest) *obj {
	reason := int64(c.GetReason()) - 1
	if reason < 0 {
		reason = int64(agentv2.CancelReason_CANCEL_REASON_MANUAL) - 1
	}
	return mp(3).
		add("correlation_id", c.GetCorrelationId()).
		add("reason", reason).
		add("timestamp_ms", c.GetTimestampMs())
}

func cancelIn(r *rd, v any) *agentv2.CancelRequest {
	x := r.rec(v, "cancel")
	c := &agentv2.CancelRequest{
		CorrelationId: r.str(x.get(0, "correlation_id"), "correlation_id"),
		TimestampMs:   r.u64(x.get(2, "timestamp_ms"), "timestamp_ms"),
	}
	if n := r.i64(x.get(1, "reason"), "reason"); n >= 0 && n <= 5 {
		c.Reason = agentv2.CancelReason(n + 1)
	}
	return c
}

func pingOut(seq, ts uint64) *obj {
	return mp(2).add("sequence", seq).add("timestamp_ms", ts)
}

// pingIn reads a ping, or a pong (the reference's pong is the ping echoed).
func pingIn(r *rd, v any) (seq, ts uint64) {
	x := r.rec(v, "ping")
	return r.u64(x.get(0, "sequence"), "sequence"), r.u64(x.get(1, "timestamp_ms"), "timestamp_ms")
}

// healthNames are serde's tags for HealthState (tag = "status").
var healthNames = map[string]agentv2.HealthState{
	"healthy":   agentv2.HealthState_HEALTH_STATE_HEALTHY,
	"degraded":  agentv2.HealthState_HEALTH_STATE_DEGRADED,
	"draining":  agentv2.HealthState_HEALTH_STATE_DRAINING,
	"unhealthy": agentv2.HealthState_HEALTH_STATE_UNHEALTHY,
}

func healthOut(h *agentv2.HealthStatus) *obj {
	return mp(4).
		add("agent_id", h.GetAgentId()).
		add("state", int64(h.GetState())).
		add("message", optStr(h.Message)).
		add("timestamp_ms", h.GetTimestampMs())
}

// healthIn reads the state as the reference proxy does (an integer in
// agentwire's numbering) or as serde writes HealthState (tagged).
func healthIn(r *rd, v any) *agentv2.HealthStatus {
	x := r.rec(v, "health")
	h := &agentv2.HealthStatus{
		AgentId:     r.str(x.get(0, "agent_id"), "agent_id"),
		Message:     r.optStr(x.get(2, "message"), "message"),
		TimestampMs: r.u64(x.get(6, "timestamp_ms"), "timestamp_ms"),
	}
	switch s := x.get(1, "state").(type) {
	case map[string]any:
		h.State = healthNames[r.str(s["status"], "state.status")]
	case []any:
		if len(s) > 0 {
			h.State = healthNames[r.str(s[0], "state.status")]
		}
	case string:
		h.State = healthNames[s]
	default:
		if n := r.i64(s, "state"); n >= 1 && n <= 4 {
			h.State = agentv2.HealthState(n)
		}
	}
	if h.State == agentv2.HealthState_HEALTH_STATE_UNSPECIFIED {
		r.fail("health state %v", x.get(1, "state"))
	}
	return h
}

func flowOut(f *agentv2.FlowControlSignal) *obj {
	return mp(4).
		add("correlation_id", optStr(f.CorrelationId)).
		add("action", int64(f.GetAction())).
		add("buffer_available", optU64(f.BufferAvailable)).
		add("timestamp_ms", f.GetTimestampMs())
}

func flowIn(r *rd, v any) *agentv2.FlowControlSignal {
	x := r.rec(v, "flow control")
	f := &agentv2.FlowControlSignal{
		CorrelationId:   r.optStr(x.get(0, "correlation_id"), "correlation_id"),
		BufferAvailable: r.optU64(x.get(2, "buffer_available"), "buffer_available"),
		TimestampMs:     r.u64(x.get(3, "timestamp_ms"), "timestamp_ms"),
	}
	n := r.i64(x.get(1, "action"), "action")
	if n < 1 || n > 3 {
		r.fail("flow action %d", n)
	}
	f.Action = agentv2.FlowAction(n)
	return f
}

func labelsOut(m map[string]string) *obj {
	o := mp(len(m))
	for _, k := range sortedKeys(m) {
		o.add(k, m[k])
	}
	return o
}

// metricsOut writes MetricsReport positionally, as rmp_serde would, but
// with help always present (nil for none): skipping it, as its
// skip_serializing_if does, would shift the fields after it.
func metricsOut(m *agentv2.MetricsReport) *obj {
	cs := make([]any, 0, len(m.GetCounters()))
	for _, c := range m.GetCounters() {
		cs = append(cs, strct(4).add("name", c.GetName()).add("help", optStr(c.Help)).
			add("labels", labelsOut(c.GetLabels())).add("value", c.GetValue()))
	}
	gs := make([]any, 0, len(m.GetGauges()))
	for _, g := range m.GetGauges() {
		gs = append(gs, strct(4).add("name", g.GetName()).add("help", optStr(g.Help)).
			add("labels", labelsOut(g.GetLabels())).add("value", g.GetValue()))
	}
	hs := make([]any, 0, len(m.GetHistograms()))
	for _, h := range m.GetHistograms() {
		bs := make([]any, 0, len(h.GetBuckets()))
		for _, b := range h.GetBuckets() {
			var le any = b.GetLe()
			if math.IsInf(b.GetLe(), 1) {
				le = "+Inf" // metrics.rs serialize_le
			}
			bs = append(bs, strct(2).add("le", le).add("count", b.GetCount()))
		}
		hs = append(hs, strct(6).add("name", h.GetName()).add("help", optStr(h.Help)).
			add("labels", labelsOut(h.GetLabels())).add("sum", h.GetSum()).
			add("count", h.GetCount()).add("buckets", bs))
	}
	return strct(6).
		add("agent_id", m.GetAgentId()).
		add("timestamp_ms", m.GetTimestampMs()).
		add("interval_ms", m.GetIntervalMs()).
		add("counters", cs).
		add("gauges", gs).
		add("histograms", hs)
}

func metricsIn(r *rd, v any) *agentv2.MetricsReport {
	x := r.rec(v, "metrics")
	m := &agentv2.MetricsReport{
		AgentId:     r.str(x.get(0, "agent_id"), "agent_id"),
		TimestampMs: r.u64(x.get(1, "timestamp_ms"), "timestamp_ms"),
		IntervalMs:  r.u64(x.get(2, "interval_ms"), "interval_ms"),
	}
	for _, e := range r.list(x.get(3, "counters"), "counters") {
		c := r.rec(e, "counter")
		m.Counters = append(m.Counters, &agentv2.CounterMetric{
			Name: r.str(c.get(0, "name"), "name"), Help: r.optStr(c.get(1, "help"), "help"),
			Labels: r.strMap(c.get(2, "labels"), "labels"), Value: r.u64(c.get(3, "value"), "value"),
		})
	}
	for _, e := range r.list(x.get(4, "gauges"), "gauges") {
		g := r.rec(e, "gauge")
		m.Gauges = append(m.Gauges, &agentv2.GaugeMetric{
			Name: r.str(g.get(0, "name"), "name"), Help: r.optStr(g.get(1, "help"), "help"),
			Labels: r.strMap(g.get(2, "labels"), "labels"), Value: r.float(g.get(3, "value"), "value"),
		})
	}
	for _, e := range r.list(x.get(5, "histograms"), "histograms") {
		h := r.rec(e, "histogram")
		hm := &agentv2.HistogramMetric{
			Name: r.str(h.get(0, "name"), "name"), Help: r.optStr(h.get(1, "help"), "help"),
			Labels: r.strMap(h.get(2, "labels"), "labels"), Sum: r.float(h.get(3, "sum"), "sum"),
			Count: r.u64(h.get(4, "count"), "count"),
		}
		for _, be := range r.list(h.get(5, "buckets"), "buckets") {
			b := r.rec(be, "bucket")
			hm.Buckets = append(hm.Buckets, &agentv2.HistogramBucket{
				Le: r.float(b.get(0, "le"), "le"), Count: r.u64(b.get(1, "count"), "count"),
			})
		}
		m.Histograms = append(m.Histograms, hm)
	}
	return m
}
