package reftest

// Health is frame 0x30. uds.rs reads only {state: Option<i64>} by name, so
// the agent sends a map (in MessagePack too) with the integer state of the
// gRPC enum (1 healthy, 2 degraded, 3 draining, 4 unhealthy); v2::HealthStatus
// itself (state a tagged enum) would not parse there.
func Health(agentID string, state int, message *string, ts uint64) Map {
	return Map{{"agent_id", agentID}, {"state", state}, {"message", opt(message)},
		{"timestamp_ms", ts}}
}

// Counter, Gauge and Histogram are the metrics.rs metric structs. Help is
// always set here: skip_serializing_if on it makes the positional MessagePack
// array ambiguous when it is absent.
type Counter struct {
	Name, Help string
	Labels     map[string]string
	Value      uint64
}

// Gauge is metrics.rs GaugeMetric.
type Gauge struct {
	Name, Help string
	Labels     map[string]string
	Value      float64
}

// Bucket is metrics.rs HistogramBucket; Inf writes le as "+Inf".
type Bucket struct {
	LE    float64
	Inf   bool
	Count uint64
}

// Histogram is metrics.rs HistogramMetric.
type Histogram struct {
	Name, Help string
	Labels     map[string]string
	Sum        float64
	Count      uint64
	Buckets    []Bucket
}

// Metrics is frame 0x31, metrics.rs MetricsReport (uds.rs deserialises it
// with the negotiated encoding: positional in MessagePack).
func Metrics(agentID string, ts, interval uint64, cs []Counter, gs []Gauge, hs []Histogram) Struct {
	counters := make([]any, len(cs))
	for i, c := range cs {
		counters[i] = Struct{{"name", c.Name}, {"help", c.Help},
			{"labels", stringMap(c.Labels)}, {"value", c.Value}}
	}
	gauges := make([]any, len(gs))
	for i, g := range gs {
		gauges[i] = Struct{{"name", g.Name}, {"help", g.Help},
			{"labels", stringMap(g.Labels)}, {"value", g.Value}}
	}
	hists := make([]any, len(hs))
	for i, h := range hs {
		buckets := make([]any, len(h.Buckets))
		for j, b := range h.Buckets {
			var le any = b.LE
			if b.Inf {
				le = "+Inf"
			}
			buckets[j] = Struct{{"le", le}, {"count", b.Count}}
		}
		hists[i] = Struct{{"name", h.Name}, {"help", h.Help},
			{"labels", stringMap(h.Labels)}, {"sum", h.Sum}, {"count", h.Count},
			{"buckets", buckets}}
	}
	return Struct{{"agent_id", agentID}, {"timestamp_ms", ts}, {"interval_ms", interval},
		{"counters", counters}, {"gauges", gauges}, {"histograms", hists}}
}

// ListUpdate is frame 0x32, control.rs ConfigUpdateRequest with the
// internally tagged ConfigUpdateType::ListUpdate (tag "type" comes first,
// so it is element 0 of the MessagePack array).
func ListUpdate(requestID, listID string, add, remove []string, ts uint64) Struct {
	return Struct{{"update_type", Struct{{"type", "list_update"}, {"list_id", listID},
		{"add", strList(add)}, {"remove", strList(remove)}}},
		{"request_id", requestID}, {"timestamp_ms", ts}}
}

// FlowControl is frame 0x33. uds.rs reads {action: Option<i64>} by name
// (1 pause, 2 resume), so it is a map in both encodings; the other keys are
// the gRPC FlowControlSignal's.
func FlowControl(correlationID *string, action int, ts uint64) Map {
	return Map{{"correlation_id", opt(correlationID)}, {"action", action},
		{"buffer_available", nil}, {"timestamp_ms", ts}}
}

// Cancel is frame 0x40. uds.rs always sends it as JSON (json! macro: keys
// sorted), whatever the negotiated encoding; reason is client.rs
// CancelReason "as i32", its 0-based discriminant (0 client disconnect,
// 1 timeout, 2 blocked by agent, 3 upstream error, 4 shutdown, 5 manual).
func Cancel(correlationID string, reason int, ts uint64) Map {
	return Map{{"correlation_id", correlationID}, {"reason", reason}, {"timestamp_ms", ts}}
}

// Ping is frame 0x41, always JSON; uds_server.rs answers with a Pong (0x42)
// whose payload is the ping's bytes echoed.
func Ping(seq, ts uint64) Map {
	return Map{{"sequence", seq}, {"timestamp_ms", ts}}
}
