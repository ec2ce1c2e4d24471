// Command agentcheck runs agentwire's protocol conformance suite (package
// agenttest) against an agent endpoint and prints a pass/fail table.
//
//	agentcheck [flags] ENDPOINT
//
// ENDPOINT is unix:///path/agent.sock, grpc://host:port, grpcs://host:port,
// http://host:port (Connect/gRPC over h2c) or https://host:port. The exit
// status is 0 when every required check passed, 1 when one failed, and 2
// when the agent could not be reached or the command line is wrong.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agenttest"
	"github.com/agentwire/agentwire/transport"
)

// Exit statuses.
const (
	exitPass  = 0
	exitFail  = 1
	exitUsage = 2 // also: agent unreachable
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agentcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		timeout      = fs.Duration("timeout", 30*time.Second, "bound on the whole suite")
		checkTimeout = fs.Duration("check-timeout", agenttest.DefaultCheckTimeout, "bound on each check")
		blockPath    = fs.String("block-path", agenttest.DefaultBlockPath, "request path the agent blocks")
		blockStatus  = fs.Uint("block-status", 0, "HTTP status the block must use (0: any 4xx/5xx)")
		allowPath    = fs.String("allow-path", agenttest.DefaultAllowPath, "request path the agent allows")
		mutation     = fs.String("mutation-header", "", "header the agent must set or add on allowed requests")
		service      = fs.String("service", transport.DefaultServiceName, "gRPC service name")
		maxFrame     = fs.Int("max-frame", 0, "the agent's frame size limit in bytes (0: 16 MiB)")
		only         = fs.String("checks", "", "comma-separated checks to run (default: all; -list shows them)")
		list         = fs.Bool("list", false, "list the checks and exit")
		asJSON       = fs.Bool("json", false, "print the results as JSON")
	)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: agentcheck [flags] ENDPOINT\n\nENDPOINT: unix:///path.sock, grpc://host:port, grpcs://host:port, http://host:port, https://host:port\n\nflags:")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitPass
		}
		return exitUsage
	}
	if *list {
		for _, n := range agenttest.CheckNames() {
			fmt.Fprintln(stdout, n)
		}
		return exitPass
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	endpoint := pos[0]

	opts := []agenttest.Option{
		agenttest.WithCheckTimeout(*checkTimeout),
		agenttest.WithBlockPath(*blockPath),
		agenttest.WithBlockStatus(uint32(*blockStatus)),
		agenttest.WithAllowPath(*allowPath),
		agenttest.WithMutationHeader(*mutation),
		agenttest.WithTransportOptions(transport.WithServiceName(*service)),
	}
	if *maxFrame > 0 {
		opts = append(opts, agenttest.WithMaxFrameSize(*maxFrame))
	}
	if *only != "" {
		names := strings.Split(*only, ",")
		known := make(map[string]bool)
		for _, n := range agenttest.CheckNames() {
			known[n] = true
		}
		for _, n := range names {
			if !known[n] {
				fmt.Fprintf(stderr, "agentcheck: unknown check %q (agentcheck -list shows them)\n", n)
				return exitUsage
			}
		}
		opts = append(opts, agenttest.WithChecks(names...))
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	results, err := agenttest.Run(ctx, endpoint, opts...)
	if err != nil {
		// Unreachable or invalid endpoint: the message says which.
		msg := err.Error()
		var e *agentwire.Error
		if errors.As(err, &e) {
			msg = e.Message()
		}
		fmt.Fprintf(stderr, "agentcheck: %s\n", msg)
		return exitUsage
	}
	passed := agenttest.Passed(results)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(struct {
			Endpoint string             `json:"endpoint"`
			Passed   bool               `json:"passed"`
			Summary  agenttest.Summary  `json:"summary"`
			Results  []agenttest.Result `json:"results"`
		}{endpoint, passed, agenttest.Summarize(results), results})
	} else {
		fmt.Fprintf(stdout, "agentcheck %s\n\n", endpoint)
		err = agenttest.WriteTable(stdout, results)
	}
	if err != nil {
		fmt.Fprintf(stderr, "agentcheck: %v\n", err)
		return exitFail
	}
	if !passed {
		return exitFail
	}
	return exitPass
}

// parseInterspersed parses flags wherever they appear among the
// positional arguments, so "agentcheck ENDPOINT -json" works too.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
