package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"google.golang.org/protobuf/proto"
)

// watchQueue is how many reports may wait for the printer; a slower
// terminal drops the excess (and says so) rather than stall the connection.
const watchQueue = 64

type watched struct {
	at time.Time
	m  proto.Message // *HealthStatus or *MetricsReport
}

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("watch", "ENDPOINT [-for 30s] [-interval 1s] [flags]", stderr)
	var c common
	c.register(fs)
	dur := fs.Duration("for", 0, "stop after this long (0: until interrupted)")
	interval := fs.Duration("interval", time.Second, "report interval to ask the agent for")
	endpoint, err := parseEndpoint(fs, args)
	if err != nil {
		return err
	}

	reports := make(chan watched, watchQueue)
	var dropped atomic.Int64
	push := func(m proto.Message) {
		select {
		case reports <- watched{time.Now(), m}:
		default:
			dropped.Add(1)
		}
	}
	conn, err := dial(ctx, endpoint, &c,
		transport.WithHealthInterval(*interval),
		transport.WithHealthHandler(func(h *agentv2.HealthStatus) { push(h) }),
		transport.WithMetricsHandler(func(m *agentv2.MetricsReport) { push(m) }))
	if err != nil {
		return err
	}
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	caps := conn.Capabilities()
	if !c.json {
		fmt.Fprintf(stdout, "watching %s (agent %s), Ctrl-C to stop\n", endpoint, caps.GetAgentId())
		fmt.Fprintln(stdout, "(reports the agent sends on this one connection; agentwire agents report this connection's load, not their other connections')")
	}
	enc := json.NewEncoder(stdout)
	var nHealth, nMetrics int
	var connErr error
	emit := func(r watched) error {
		switch m := r.m.(type) {
		case *agentv2.HealthStatus:
			nHealth++
			if c.json {
				return enc.Encode(struct {
					Time   time.Time       `json:"time"`
					Health json.RawMessage `json:"health"`
				}{r.at, rawProto(m)})
			}
			_, err := fmt.Fprintf(stdout, "%s  health   %s %s\n", r.at.Format("15:04:05.000"), m.GetAgentId(), healthLine(m))
			return err
		case *agentv2.MetricsReport:
			nMetrics++
			if c.json {
				return enc.Encode(struct {
					Time    time.Time       `json:"time"`
					Metrics json.RawMessage `json:"metrics"`
				}{r.at, rawProto(m)})
			}
			_, err := fmt.Fprintf(stdout, "%s  metrics  %s %s\n", r.at.Format("15:04:05.000"), m.GetAgentId(), metricsLine(m))
			return err
		}
		return nil
	}
loop:
	for {
		select {
		case r := <-reports:
			if err := emit(r); err != nil {
				closeConn(conn)
				return err
			}
		case <-conn.Done():
			connErr = conn.Err()
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	closeConn(conn)
	// The reader has stopped: print what it queued before it did.
	for {
		select {
		case r := <-reports:
			if err := emit(r); err != nil {
				return err
			}
			continue
		default:
		}
		break
	}
	if !c.json {
		fmt.Fprintf(stdout, "%d health reports, %d metrics reports", nHealth, nMetrics)
		if n := dropped.Load(); n > 0 {
			fmt.Fprintf(stdout, ", %d dropped (output too slow)", n)
		}
		fmt.Fprintln(stdout)
	}
	if connErr != nil {
		return failf(exitFail, "connection to %s lost: %s", endpoint, describeErr(connErr))
	}
	return nil
}

// metricsLine renders a metrics report on one line: counters and gauges
// with their labels, histograms as count and sum.
func metricsLine(m *agentv2.MetricsReport) string {
	var parts []string
	for _, c := range m.GetCounters() {
		parts = append(parts, fmt.Sprintf("%s%s=%d", c.GetName(), labels(c.GetLabels()), c.GetValue()))
	}
	for _, g := range m.GetGauges() {
		parts = append(parts, fmt.Sprintf("%s%s=%g", g.GetName(), labels(g.GetLabels()), g.GetValue()))
	}
	for _, h := range m.GetHistograms() {
		parts = append(parts, fmt.Sprintf("%s%s{count=%d sum=%g}", h.GetName(), labels(h.GetLabels()), h.GetCount(), h.GetSum()))
	}
	if len(parts) == 0 {
		return "(empty)"
	}
	return strings.Join(parts, " ")
}

func labels(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + l[k]
	}
	return "{" + strings.Join(keys, ",") + "}"
}
