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
	// Min and Max are, for a ratio of two scenarios, the lowest and highest
	// of the ratios of their repetitions taken in pairs (the i-th of one
	// over the i-th of the other, which ran beside it): how far this
	// machine's noise moves the ratio. Zero with one repetition.
	Min  float64 `json:"min,omitempty"`
	Max  float64 `json:"max,omitempty"`
	Want string  `json:"want"`
	Met  bool    `json:"met"`
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
	// between is ratio for scenario num over scenario den, of throughput or
	// (p50) latency, with the spread of its repetitions in pairs.
	between := func(issue int, target, num, den string, p50 bool, op string, want float64) {
		of := func(s *ScenarioResult) (float64, []float64) { return s.Throughput.Median, s.repThroughput }
		if p50 {
			of = func(s *ScenarioResult) (float64, []float64) { return s.P50.Median, s.repP50 }
		}
		n, d := r.scenario(num), r.scenario(den)
		if n == nil || d == nil {
			ratio(issue, target, 0, op, want)
			return
		}
		nm, nr := of(n)
		dm, dr := of(d)
		ratio(issue, target, div(nm, dm), op, want)
		t := &r.Targets[len(r.Targets)-1]
		t.Min, t.Max = pairedSpread(nr, dr)
	}
	get := func(name string, f func(*ScenarioResult) float64) float64 {
		if s := r.scenario(name); s != nil {
			return f(s)
		}
		return 0
	}
	baseOf := func(name string, f func(*ScenarioResult) string) string {
		if s := r.scenario(name); s != nil {
			return f(s)
		}
		return ""
	}
	between(18, "uds 4x64 pool throughput ratio to transport.Conn (uds-conn)", udsPool4x64, udsConn4x64, false, ">=", 0.9)
	between(18, "uds 4x64 throughput ratio to raw frames", udsPool4x64,
		baseOf(udsPool4x64, func(s *ScenarioResult) string { return s.Baseline }), false, ">=", 0.42)
	between(18, "uds 4x64 throughput ratio to the socket limit", udsPool4x64,
		baseOf(udsPool4x64, func(s *ScenarioResult) string { return s.SockLimitBaseline }), false, ">=", 0.25)
	between(18, "uds 1 in flight p50 ratio to raw frames", uds1x1,
		baseOf(uds1x1, func(s *ScenarioResult) string { return s.Baseline }), true, "<=", 1.2)
	between(18, "grpc 1x64 throughput ratio to bare grpc-go (protobuf messages)", grpc1x64,
		baseOf(grpc1x64, func(s *ScenarioResult) string { return s.Baseline }), false, ">=", 0.95)
	if v := get(grpc1x64, func(s *ScenarioResult) float64 { return s.BytesRatio }); v > 0 {
		ratio(18, "(info) grpc 1x64 ratio to bare grpc-go passing bytes, no protobuf", v, ">=", 0.95)
	}
	if v := get(grpc1x64, func(s *ScenarioResult) float64 { return s.ProtobufRatio }); v > 0 {
		ratio(18, "(info) grpc 1x64 ratio to bare grpc-go with the same protobuf messages", v, ">=", 0.95)
	}

	between(22, "uds 4x64 cache-hit throughput ratio to the uncached pool", cache4x64,
		baseOf(cache4x64, func(s *ScenarioResult) string { return s.Baseline }), false, ">=", 5)
	if s := r.scenario(cache4x64); s != nil {
		check(22, "uds 4x64 proxy CPU µs per cache hit", s.ClientCPU.Median, "<=", 1, true)
	}

	for _, tr := range []string{tUDSFailover, tUDSShadow} {
		name := tr + " 4x64 " + payloadRequest
		between(23, tr+" 4x64 "+payloadRequest+" throughput ratio to the plain pool (uds-plain)", name,
			baseOf(name, func(s *ScenarioResult) string { return s.Baseline }), false, ">=", 0.9)
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
		value := num(t.Value)
		if t.Max > 0 {
			value += " [" + num(t.Min) + "–" + num(t.Max) + "]"
		}
		fmt.Fprintf(tw, "#%d\t%s\t%s\twant %s\t%s\n", t.Issue, t.Target, value, t.Want, verdict)
	}
	_ = tw.Flush()
}

// pairedSpread is the lowest and highest of num[i]/den[i] over the
// repetitions both have; zeros with fewer than two.
func pairedSpread(num, den []float64) (lo, hi float64) {
	n := min(len(num), len(den))
	if n < 2 {
		return 0, 0
	}
	for i := range n {
		x := div(num[i], den[i])
		if i == 0 || x < lo {
			lo = x
		}
		if x > hi {
			hi = x
		}
	}
	return lo, hi
}
