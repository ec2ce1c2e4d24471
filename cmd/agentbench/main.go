// Command agentbench measures agentwire against the physical limit and its
// peers, side by side in one run: the example WAF agent runs in its own
// process, the bench process drives it closed-loop over every transport,
// and the same shapes of traffic run against bare baselines (raw frames
// over a Unix socket, driven with a goroutine per call as agentwire is and
// as a socket load generator drives them, the socket limit; bare grpc-go
// bidi streams carrying protobuf messages through its default codec, bytes
// through a pass-through codec, and agentwire's own messages; bare
// connect-go) served by a separate process too. Each agentwire figure is
// printed with its ratio to its baselines, because the machines it runs
// on are shared and noisy: only ratios measured in one run mean something.
//
//	go run ./cmd/agentbench            # full run, a few minutes
//	go run ./cmd/agentbench --quick    # a few seconds, for CI
//	go run ./cmd/agentbench --json     # machine-readable
//
// The agent is examples/waf-agent, built into a temporary directory (or
// given with --agent PATH). Reverse connections, the slow agent used to
// measure memory per in-flight request, and the baseline servers are this
// binary re-executed with a hidden subcommand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		os.Exit(runChild(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(1)
	}
}

// options is one run's configuration.
type options struct {
	quick      bool
	json       bool
	duration   time.Duration // measured time of one repetition of a scenario
	warmup     time.Duration // unmeasured time before it
	reps       int
	only       []string // scenario name filters (substring match); empty: all
	agent      string   // "build", "self", or the path of a waf-agent binary
	cpuprofile string
	memprofile string
	agentProf  string
	idleConns  int // connections opened to measure memory per idle connection
	inflight   int // requests parked to measure memory per in-flight request
	gogc       int // GOGC for both processes; 0 leaves the environment's
	verbose    bool
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("agentbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.quick, "quick", false, "a few seconds in total: one short repetition of a subset (CI)")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of tables")
	fs.DurationVar(&o.duration, "duration", 0, "measured time per scenario repetition (default 1.5s, quick 150ms)")
	fs.DurationVar(&o.warmup, "warmup", 0, "warm-up before each measured repetition (default 300ms, quick 50ms)")
	fs.IntVar(&o.reps, "reps", 0, "repetitions of each scenario, interleaved (default 3, quick 1)")
	only := fs.String("only", "", "comma-separated substrings: run only scenarios whose name contains one (baselines they need run too)")
	fs.StringVar(&o.agent, "agent", "build", `agent to benchmark: "build" (go build examples/waf-agent), "self" (this binary serving the same policy), or a waf-agent binary path`)
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the bench (proxy) process to this file")
	fs.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile of the bench (proxy) process to this file")
	fs.StringVar(&o.agentProf, "agent-cpuprofile", "", "write a CPU profile of the agent process to this file (with --agent self)")
	fs.IntVar(&o.idleConns, "idle-conns", 0, "connections opened to measure memory per idle connection (default 200, quick 20)")
	fs.IntVar(&o.inflight, "inflight", 0, "requests parked to measure memory per in-flight request (default 2000, quick 200)")
	fs.IntVar(&o.gogc, "gogc", 0, "GOGC for the bench and the agent process (0: leave the environment's, Go's default 100)")
	fs.BoolVar(&o.verbose, "v", false, "log progress to stderr")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.gogc < 0 {
		return o, errors.New("--gogc must be positive")
	}
	if o.agentProf != "" && o.agent != "self" {
		return o, errors.New("--agent-cpuprofile needs --agent self")
	}
	def := func(d *time.Duration, full, quick time.Duration) {
		if *d <= 0 {
			*d = full
			if o.quick {
				*d = quick
			}
		}
	}
	defInt := func(n *int, full, quick int) {
		if *n <= 0 {
			*n = full
			if o.quick {
				*n = quick
			}
		}
	}
	def(&o.duration, 1500*time.Millisecond, 150*time.Millisecond)
	def(&o.warmup, 300*time.Millisecond, 50*time.Millisecond)
	defInt(&o.reps, 3, 1)
	defInt(&o.idleConns, 200, 20)
	defInt(&o.inflight, 2000, 200)
	if *only != "" {
		for _, s := range strings.Split(*only, ",") {
			if s = strings.TrimSpace(s); s != "" {
				o.only = append(o.only, s)
			}
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	applyGOGC(o)
	logf := func(format string, a ...any) {
		if o.verbose {
			fmt.Fprintf(stderr, "agentbench: "+format+"\n", a...)
		}
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	rep, err := bench(ctx, o, logf)
	if err != nil {
		return err
	}
	rep.Elapsed = time.Since(start).Round(time.Millisecond).String()
	if o.memprofile != "" {
		f, err := os.Create(o.memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	if o.json {
		return writeJSON(stdout, rep)
	}
	writeTables(stdout, rep)
	return nil
}

// machine describes where a run happened.
func machine() Machine {
	host, _ := os.Hostname()
	return Machine{
		Host:       host,
		GOOS:       runtime.GOOS,
		GOARCH:     runtime.GOARCH,
		NumCPU:     runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		CPUModel:   cpuModel(),
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
