package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentwire/agentwire/agenttest"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// protoJSON renders messages with the schema's field names.
var protoJSON = protojson.MarshalOptions{UseProtoNames: true}

func rawProto(m proto.Message) json.RawMessage {
	if m == nil {
		return nil
	}
	b, err := protoJSON.Marshal(m)
	if err != nil {
		return json.RawMessage(fmt.Sprintf("%q", err.Error()))
	}
	return b
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type probeJSON struct {
	Endpoint      string          `json:"endpoint"`
	ConnectMS     float64         `json:"connect_ms"`
	Capabilities  json.RawMessage `json:"capabilities"`
	Health        json.RawMessage `json:"health,omitempty"`
	HealthAfterMS *float64        `json:"health_after_ms,omitempty"`
	PingRTTMS     *float64        `json:"ping_rtt_ms,omitempty"`
	PingError     string          `json:"ping_error,omitempty"`
}

func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe", "ENDPOINT [flags]", stderr)
	var c common
	c.register(fs)
	wait := fs.Duration("wait", 2*time.Second, "how long to wait for the first health report")
	endpoint, err := parseEndpoint(fs, args)
	if err != nil {
		return err
	}

	type report struct {
		h  *agentv2.HealthStatus
		at time.Time
	}
	health := make(chan report, 1)
	start := time.Now()
	conn, err := dial(ctx, endpoint, &c, transport.WithHealthHandler(func(h *agentv2.HealthStatus) {
		select {
		case health <- report{h, time.Now()}:
		default:
		}
	}))
	if err != nil {
		return err
	}
	defer closeConn(conn)
	connected := time.Now()
	caps := conn.Capabilities()

	pctx, cancel := context.WithTimeout(ctx, c.timeout)
	rtt, pingErr := conn.Ping(pctx)
	cancel()

	var first *report
	timer := time.NewTimer(*wait - time.Since(connected))
	select {
	case r := <-health:
		first = &r
	case <-timer.C:
	case <-ctx.Done():
	}
	timer.Stop()

	if c.json {
		out := probeJSON{Endpoint: endpoint, ConnectMS: ms(connected.Sub(start)), Capabilities: rawProto(caps)}
		if first != nil {
			after := ms(first.at.Sub(connected))
			out.Health, out.HealthAfterMS = rawProto(first.h), &after
		}
		if pingErr != nil {
			out.PingError = pingErr.Error()
		} else {
			r := ms(rtt)
			out.PingRTTMS = &r
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
		row("endpoint", "%s", endpoint)
		row("connected", "%v (dial and handshake)", connected.Sub(start).Round(time.Microsecond))
		agentLine := caps.GetAgentId()
		if n := caps.GetName(); n != "" {
			agentLine += "  name " + n
		}
		if v := caps.GetVersion(); v != "" {
			agentLine += "  version " + v
		}
		row("agent", "%s", agentLine)
		row("protocol", "%d", caps.GetProtocolVersion())
		row("events", "%s", eventNames(caps.GetSupportedEvents()))
		row("features", "%s", features(caps.GetFeatures()))
		row("limits", "%s", limits(caps.GetLimits()))
		if iv := caps.GetHealthConfig().GetReportIntervalMs(); iv > 0 {
			row("health every", "%v", time.Duration(iv)*time.Millisecond)
		}
		if first != nil {
			row("health", "%s, reported %v after the handshake", healthLine(first.h), first.at.Sub(connected).Round(time.Microsecond))
		} else {
			row("health", "no report within %v", *wait)
		}
		if pingErr != nil {
			row("ping", "no answer: %v", pingErr)
		} else {
			row("ping", "rtt %v", rtt.Round(time.Microsecond))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if pingErr != nil {
		return failf(exitFail, "ping %s: %v", endpoint, pingErr)
	}
	return nil
}

func eventNames(evs []agentv2.EventType) string {
	if len(evs) == 0 {
		return "(none declared)"
	}
	names := make([]string, len(evs))
	for i, e := range evs {
		names[i] = strings.ToLower(shortCode(e.String(), "EVENT_TYPE_"))
	}
	return strings.Join(names, " ")
}

func features(f *agentv2.AgentFeatures) string {
	out := agenttest.FeatureNames(f)
	if n := f.GetConcurrentRequests(); n > 0 {
		out = append(out, fmt.Sprintf("concurrent-requests=%d", n))
	}
	if len(out) == 0 {
		return "(none)"
	}
	return strings.Join(out, " ")
}

func limits(l *agentv2.AgentLimits) string {
	var out []string
	if n := l.GetMaxConcurrency(); n > 0 {
		out = append(out, fmt.Sprintf("max_concurrency=%d", n))
	}
	if n := l.GetMaxBodySize(); n > 0 {
		out = append(out, fmt.Sprintf("max_body_size=%d", n))
	}
	if n := l.GetPreferredChunkSize(); n > 0 {
		out = append(out, fmt.Sprintf("preferred_chunk_size=%d", n))
	}
	if l != nil && l.MaxMemory != nil {
		out = append(out, fmt.Sprintf("max_memory=%d", l.GetMaxMemory()))
	}
	if l != nil && l.MaxProcessingTimeMs != nil {
		out = append(out, fmt.Sprintf("max_processing_time=%v", time.Duration(l.GetMaxProcessingTimeMs())*time.Millisecond))
	}
	if len(out) == 0 {
		return "(none declared)"
	}
	return strings.Join(out, " ")
}

// healthLine renders a health report on one line.
func healthLine(h *agentv2.HealthStatus) string {
	var b strings.Builder
	b.WriteString(shortCode(h.GetState().String(), "HEALTH_STATE_"))
	if m := h.GetMessage(); m != "" {
		fmt.Fprintf(&b, " %q", m)
	}
	if r := h.GetUnhealthyReason(); r != "" {
		fmt.Fprintf(&b, " reason=%q", r)
	}
	if l := h.GetLoad(); l != nil {
		fmt.Fprintf(&b, " in_flight=%d queue=%d processed=%d rejected=%d timed_out=%d p50=%.2fms p99=%.2fms",
			l.GetInFlight(), l.GetQueueDepth(), l.GetRequestsProcessed(), l.GetRequestsRejected(),
			l.GetRequestsTimedOut(), l.GetP50LatencyMs(), l.GetP99LatencyMs())
	}
	if len(h.GetDisabledFeatures()) > 0 {
		fmt.Fprintf(&b, " disabled=%s", strings.Join(h.GetDisabledFeatures(), ","))
	}
	return b.String()
}
