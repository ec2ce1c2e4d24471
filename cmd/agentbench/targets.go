package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// TargetResult is one issue's target, checked on this run.
type TargetResult struct {
	Issue  int     `json:"issue"`
	Target string  `json:"target"`
	Value  float64 `json:"value"`
	Want   string  `json:"want"`
	Met    bool    `json:"met"`
	// Missing is set when the run did not measure what the target needs.
	Missing bool `json:"missing,omitempty"`
}

// Scenarios the targets read.
const (
	udsPool4x64 = "uds 4x64 headers"
	udsConn4x64 = "uds-conn 4x64 headers"
	uds1x1      = "uds 1x1 headers"
	grpc1x64    = "grpc 1x64 headers"
	cache4x64   = "uds-cache 4x64 headers"
)

// checkTargets checks the targets of issues 18, 22 and 23 and the ones of
// issue 8 that 18 leaves as they were. Ratios are 0, and their targets
// missing, when the run lacks a scenario they divide.
func (r *Report) checkTargets() {
	check := func(issue int, target string, value float64, op string, want float64, measured bool) {
		met := value >= want
		if op == "<=" {
			met = value <= want
		}
		r.Targets = append(r.Targets, TargetResult{Issue: issue, Target: target, Value: value,
			Want: op + " " + num(want), Met: met && measured, Missing: !measured})
	}
	ratio := func(issue int, target string, value float64, op string, want float64) {
		check(issue, target, value, op, want, value > 0)
	}
	get := func(name string, f func(*ScenarioResult) float64) float64 {
		if s := r.scenario(name); s != nil {
			return f(s)
		}
		return 0
	}
	thr := func(s *ScenarioResult) float64 { return s.Throughput.Median }

	ratio(18, "uds 4x64 pool throughput ratio to transport.Conn (uds-conn)",
		div(get(udsPool4x64, thr), get(udsConn4x64, thr)), ">=", 0.9)
	ratio(18, "uds 4x64 throughput ratio to raw frames",
		get(udsPool4x64, func(s *ScenarioResult) float64 { return s.ThroughputRatio }), ">=", 0.42)
	ratio(18, "uds 4x64 throughput ratio to the socket limit",
		get(udsPool4x64, func(s *ScenarioResult) float64 { return s.SockLimitRatio }), ">=", 0.25)
	ratio(18, "uds 1 in flight p50 ratio to raw frames",
		get(uds1x1, func(s *ScenarioResult) float64 { return s.P50Ratio }), "<=", 1.2)
	ratio(18, "grpc 1x64 throughput ratio to bare grpc-go (protobuf messages)",
		get(grpc1x64, func(s *ScenarioResult) float64 { return s.ThroughputRatio }), ">=", 0.95)
	if v := get(grpc1x64, func(s *ScenarioResult) float64 { return s.BytesRatio }); v > 0 {
		ratio(18, "(info) grpc 1x64 ratio to bare grpc-go passing bytes, no protobuf", v, ">=", 0.95)
	}
	if v := get(grpc1x64, func(s *ScenarioResult) float64 { return s.ProtobufRatio }); v > 0 {
		ratio(18, "(info) grpc 1x64 ratio to bare grpc-go with the same protobuf messages", v, ">=", 0.95)
	}

	ratio(22, "uds 4x64 cache-hit throughput ratio to the uncached pool",
		get(cache4x64, func(s *ScenarioResult) float64 { return s.ThroughputRatio }), ">=", 5)
	if s := r.scenario(cache4x64); s != nil {
		check(22, "uds 4x64 proxy CPU µs per cache hit", s.ClientCPU.Median, "<=", 1, true)
	}

	for _, tr := range []string{tUDSFailover, tUDSShadow} {
		ratio(23, tr+" 4x64 "+payloadRequest+" throughput ratio to the plain pool (uds-plain)",
			get(tr+" 4x64 "+payloadRequest, func(s *ScenarioResult) float64 { return s.ThroughputRatio }), ">=", 0.9)
	}

	if s := r.scenario(udsPool4x64); s != nil {
		check(8, "uds 4x64 decisions/s", s.Throughput.Median, ">=", 350000, true)
		check(8, "uds 4x64 proxy allocations per headers event", s.Allocs.Median, "<=", 10, true)
	}
	for _, m := range r.Memory {
		switch {
		case m.What == "idle connection" && m.Transport == tUDS:
			check(8, "uds idle connection bytes (heap+stacks)", m.TotalBytes(), "<=", 64<<10, true)
		case m.What == "in-flight request" && m.Transport == tUDS:
			check(8, "uds in-flight request heap bytes", m.HeapBytes, "<=", 2<<10, true)
		}
	}
}

// writeTargets prints the targets with their verdicts.
func writeTargets(w io.Writer, ts []TargetResult) {
	fmt.Fprintln(w, "\ntargets (issue 18, issue 22, issue 23, and issue 8's it keeps)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range ts {
		verdict := "MET"
		switch {
		case t.Missing:
			verdict = "not measured"
		case !t.Met:
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "#%d\t%s\t%s\twant %s\t%s\n", t.Issue, t.Target, num(t.Value), t.Want, verdict)
	}
	_ = tw.Flush()
}
