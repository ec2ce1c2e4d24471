package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Report is one run's results; --json prints it as is.
type Report struct {
	Machine   Machine          `json:"machine"`
	Options   RunOptions       `json:"options"`
	Agent     string           `json:"agent"`
	Driver    string           `json:"driver"`
	Scenarios []ScenarioResult `json:"scenarios"`
	Memory    []MemoryResult   `json:"memory"`
	Targets   []TargetResult   `json:"targets"`
	Elapsed   string           `json:"elapsed"`
}

// Machine is where the run happened.
type Machine struct {
	Host       string `json:"host"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	CPUModel   string `json:"cpu_model,omitempty"`
}

// RunOptions are the settings that shape the numbers.
type RunOptions struct {
	Duration string `json:"duration"`
	Warmup   string `json:"warmup"`
	Reps     int    `json:"reps"`
	Quick    bool   `json:"quick"`
	// GOGC is the garbage collector setting of both processes.
	GOGC string `json:"gogc"`
}

// Stat is a figure over the repetitions.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func statOf(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[len(s)-1]}
}

// ScenarioResult is one scenario over all repetitions. Latencies are in
// microseconds; CPU is microseconds per event; throughput events per second.
type ScenarioResult struct {
	Name         string `json:"name"`
	Transport    string `json:"transport"`
	Conns        int    `json:"conns"`
	InFlight     int    `json:"in_flight_per_conn"`
	Payload      string `json:"payload"`
	RequestBytes int    `json:"request_bytes"`
	Baseline     string `json:"baseline,omitempty"`
	Reps         int    `json:"reps"`

	Throughput Stat   `json:"events_per_sec"`
	MBps       *Stat  `json:"mb_per_sec,omitempty"`
	P50        Stat   `json:"p50_us"`
	P99        Stat   `json:"p99_us"`
	P999       Stat   `json:"p999_us"`
	ClientCPU  Stat   `json:"client_cpu_us_per_event"`
	ServerCPU  Stat   `json:"server_cpu_us_per_event"`
	Allocs     Stat   `json:"client_allocs_per_event"`
	ClientSys  Stat   `json:"client_syscalls_per_event"`
	ServerSys  Stat   `json:"server_syscalls_per_event"`
	Errors     uint64 `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	// Skipped says why the scenario did not run.
	Skipped string `json:"skipped,omitempty"`

	// Ratios to the baseline's medians (0 for baselines).
	ThroughputRatio float64 `json:"throughput_ratio,omitempty"`
	P50Ratio        float64 `json:"p50_ratio,omitempty"`
	// ProtobufRatio is the throughput ratio of a grpc scenario to bare
	// grpc-go carrying the same protobuf messages (bare-grpc-pb).
	ProtobufBaseline string  `json:"protobuf_baseline,omitempty"`
	ProtobufRatio    float64 `json:"protobuf_throughput_ratio,omitempty"`
	// BytesRatio is the throughput ratio of a grpc scenario to bare
	// grpc-go passing bytes through, without protobuf (bare-grpc).
	BytesBaseline string  `json:"bytes_baseline,omitempty"`
	BytesRatio    float64 `json:"bytes_throughput_ratio,omitempty"`
	// SockLimitRatio is the throughput ratio of a Unix-socket scenario (raw
	// frames included) to the socket-limit baseline of the same shape.
	SockLimitBaseline string  `json:"sock_limit_baseline,omitempty"`
	SockLimitRatio    float64 `json:"sock_limit_throughput_ratio,omitempty"`

	// Per repetition, in run order (repetitions of all scenarios are
	// interleaved, so the i-th ones ran minutes apart at most).
	repThroughput, repP50 []float64
}

func summarize(sc scenario, reqBytes int, rs []loopResult) ScenarioResult {
	out := ScenarioResult{
		Name: sc.name(), Transport: sc.Transport, Conns: sc.Conns, InFlight: sc.InFlight,
		Payload: sc.Payload, RequestBytes: reqBytes, Reps: len(rs),
	}
	if b, ok := sc.baseline(); ok {
		out.Baseline = b.name()
	}
	if b, ok := sc.protobufBaseline(); ok {
		out.ProtobufBaseline = b.name()
	}
	if b, ok := sc.bytesBaseline(); ok {
		out.BytesBaseline = b.name()
	}
	if b, ok := sc.sockLimitBaseline(); ok {
		out.SockLimitBaseline = b.name()
	}
	var thr, mb, p50, p99, p999, ccpu, scpu, allocs, csys, ssys []float64
	for _, r := range rs {
		ev := float64(r.events)
		thr = append(thr, ev/r.elapsed.Seconds())
		mb = append(mb, ev*bodyChunkSize/r.elapsed.Seconds()/(1<<20))
		p50 = append(p50, durationUS(r.hist.quantile(0.50)))
		p99 = append(p99, durationUS(r.hist.quantile(0.99)))
		p999 = append(p999, durationUS(r.hist.quantile(0.999)))
		ccpu = append(ccpu, durationUS(r.clientCPU)/ev)
		scpu = append(scpu, durationUS(r.serverCPU)/ev)
		allocs = append(allocs, float64(r.mallocs)/ev)
		csys = append(csys, float64(r.clientSys)/ev)
		ssys = append(ssys, float64(r.serverSys)/ev)
		out.Errors += r.errors
		if r.firstErr != nil && out.FirstError == "" {
			out.FirstError = r.firstErr.Error()
		}
	}
	out.repThroughput, out.repP50 = thr, p50
	out.Throughput, out.P50, out.P99, out.P999 = statOf(thr), statOf(p50), statOf(p99), statOf(p999)
	out.ClientCPU, out.ServerCPU, out.Allocs = statOf(ccpu), statOf(scpu), statOf(allocs)
	out.ClientSys, out.ServerSys = statOf(csys), statOf(ssys)
	if sc.Payload == payloadBody {
		s := statOf(mb)
		out.MBps = &s
	}
	return out
}

func (r *Report) scenario(name string) *ScenarioResult {
	for i := range r.Scenarios {
		if r.Scenarios[i].Name == name {
			return &r.Scenarios[i]
		}
	}
	return nil
}

// median is the median of f over the scenario called name, 0 if the run
// has none.
func (r *Report) median(name string, f func(*ScenarioResult) Stat) float64 {
	if s := r.scenario(name); s != nil {
		return f(s).Median
	}
	return 0
}

func throughputOf(s *ScenarioResult) Stat { return s.Throughput }
func p50Of(s *ScenarioResult) Stat        { return s.P50 }

// div is a ÷ b, or 0 when b is not positive (not measured).
func div(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func (r *Report) computeRatios() {
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		thr := s.Throughput.Median
		s.ThroughputRatio = div(thr, r.median(s.Baseline, throughputOf))
		s.P50Ratio = div(s.P50.Median, r.median(s.Baseline, p50Of))
		s.ProtobufRatio = div(thr, r.median(s.ProtobufBaseline, throughputOf))
		s.BytesRatio = div(thr, r.median(s.BytesBaseline, throughputOf))
		s.SockLimitRatio = div(thr, r.median(s.SockLimitBaseline, throughputOf))
	}
}

func writeJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// si formats x with a k/M suffix.
func si(x float64) string {
	switch {
	case x >= 10e6:
		return fmt.Sprintf("%.1fM", x/1e6)
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 100e3:
		return fmt.Sprintf("%.0fk", x/1e3)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

func num(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

func ratio(x float64) string {
	if x == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", x)
}

func bytesStr(x float64) string {
	switch {
	case x >= 10<<10 || x <= -10<<10:
		return fmt.Sprintf("%.1f KiB", x/1024)
	}
	return fmt.Sprintf("%.0f B", x)
}

// writeTables prints the report for people.
func writeTables(w io.Writer, r *Report) {
	m := r.Machine
	fmt.Fprintf(w, "agentbench: %s, %d CPUs (GOMAXPROCS %d), %s %s/%s\n", strings.TrimSpace(m.CPUModel), m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.GOOS, m.GOARCH)
	fmt.Fprintf(w, "agent: %s; proxy side driven through %s\n", r.Agent, r.Driver)
	fmt.Fprintf(w, "%d repetition(s) of %s after %s warm-up, interleaved, GOGC=%s; median [min–max]; ratios are agentwire ÷ its baseline in this run\n",
		r.Options.Reps, r.Options.Duration, r.Options.Warmup, r.Options.GOGC)
	fmt.Fprintf(w, "×sock: ratio to %s, raw frames with one writer and one reader per connection, no goroutine per call\n\n", tSockLimit)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\treq B\tevents/s\t[min–max]\t×base\t×sock\tMB/s\tp50 µs\tp99 µs\tp99.9 µs\t×base p50\tCPU µs/ev proxy\tagent\tsyscalls/ev proxy\tagent\tallocs/ev\terrors\t")
	for _, s := range r.Scenarios {
		if s.Skipped != "" {
			continue
		}
		mb := ""
		if s.MBps != nil {
			mb = num(s.MBps.Median)
		}
		errs := ""
		if s.Errors > 0 {
			errs = fmt.Sprint(s.Errors)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t[%s–%s]\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			s.Name, s.RequestBytes, si(s.Throughput.Median), si(s.Throughput.Min), si(s.Throughput.Max),
			ratio(s.ThroughputRatio), ratio(s.SockLimitRatio), mb, num(s.P50.Median), num(s.P99.Median), num(s.P999.Median),
			ratio(s.P50Ratio), num(s.ClientCPU.Median), num(s.ServerCPU.Median),
			num(s.ClientSys.Median), num(s.ServerSys.Median), num(s.Allocs.Median), errs)
	}
	_ = tw.Flush()
	for _, s := range r.Scenarios {
		if s.FirstError != "" {
			fmt.Fprintf(w, "  %s: first error: %s\n", s.Name, s.FirstError)
		}
		if s.Skipped != "" {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, s.Skipped)
		}
	}

	fmt.Fprintln(w, "\nproxy-side memory (live heap after GC, and goroutine stacks), per connection or request")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "what\ttransport\tN\theap\tstacks\ttotal\tnote\t")
	for _, mr := range r.Memory {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n", mr.What, mr.Transport, mr.N,
			bytesStr(mr.HeapBytes), bytesStr(mr.StackBytes), bytesStr(mr.TotalBytes()), mr.Note)
	}
	_ = tw.Flush()

	writeTargets(w, r.Targets)
	fmt.Fprintf(w, "\nelapsed %s\n", r.Elapsed)
}
