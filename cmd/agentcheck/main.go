// Command agentcheck runs agentwire's protocol conformance suite (package
// agenttest) against an agent endpoint and prints each check's result as it
// ends.
//
//	agentcheck [flags] ENDPOINT
//
// ENDPOINT is unix:///path/agent.sock, grpc://host:port, grpcs://host:port,
// http://host:port (Connect/gRPC over h2c) or https://host:port. The exit
// status is 0 when every required check passed, 1 when one failed, 2 for a
// usage error, 3 when no agent could be reached (nothing listening, or no
// agent handshake), and 4 when the run ended before every check ran.
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
	"slices"
	"strings"
	"syscall"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agenttest"
	"github.com/agentwire/agentwire/transport"
)

// Exit statuses.
const (
	exitPass       = 0
	exitFail       = 1
	exitUsage      = 2
	exitNoAgent    = 3
	exitIncomplete = 4
)

const usageText = `usage: agentcheck [flags] ENDPOINT

Runs the agentwire (Sentinel v2) conformance suite against the agent at
ENDPOINT and prints each check's result as it ends.

ENDPOINT: unix:///path.sock, grpc://host:port, grpcs://host:port,
http://host:port, https://host:port

Checks of what the agent does not advertise in its handshake are skipped
(health, flow control) or optional (event kinds not in supported_events);
each check has its own time budget (-check-timeout), and a check that did
not run is never a failure. -list describes the checks.

exit status:
  0  every required check passed
  1  the agent failed a required check
  2  usage error: bad flag, endpoint or check name
  3  no agent: nothing listens at ENDPOINT, or no agent handshake completed
  4  incomplete: -timeout ran out or the run was interrupted before every
     check ran (none failed)

flags:
`

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
		timeout      = fs.Duration("timeout", 0, "bound on the whole suite (0: none; each check has -check-timeout)")
		checkTimeout = fs.Duration("check-timeout", agenttest.DefaultCheckTimeout, "bound on each check, and on the handshake")
		blockPath    = fs.String("block-path", agenttest.DefaultBlockPath, "request path the agent blocks")
		blockStatus  = fs.Uint("block-status", 0, "HTTP status the block must use (0: any 4xx/5xx)")
		allowPath    = fs.String("allow-path", agenttest.DefaultAllowPath, "request path the agent allows")
		mutation     = fs.String("mutation-header", "", "header the agent must set or add on allowed requests (none: decision/header-mutation is skipped)")
		service      = fs.String("service", transport.DefaultServiceName, "gRPC service name")
		maxFrame     = fs.Int("max-frame", 0, "the agent's frame size limit in bytes (0: 16 MiB)")
		only         = fs.String("checks", "", "comma-separated checks to run (default: all; -list shows them)")
		list         = fs.Bool("list", false, "describe the checks and exit")
		asJSON       = fs.Bool("json", false, "print the results as JSON, at the end")
	)
	fs.Usage = func() {} // printed below, on stdout for -h and on stderr for errors
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, stdout)
			return exitPass
		}
		printUsage(fs, stderr)
		return exitUsage
	}
	if *list {
		printChecks(stdout)
		return exitPass
	}
	if len(pos) != 1 {
		printUsage(fs, stderr)
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
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
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

	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	var table *agenttest.TableWriter
	var writeErr error
	if !*asJSON {
		// Each row is printed as its check ends; the header with the first.
		opts = append(opts, agenttest.WithResultHandler(func(r agenttest.Result) {
			if table == nil {
				fmt.Fprintf(stdout, "agentcheck %s\n\n", endpoint)
				table = agenttest.NewTableWriter(stdout, names...)
			}
			if err := table.Write(r); err != nil && writeErr == nil {
				writeErr = err
			}
		}))
	}
	results, err := agenttest.Run(ctx, endpoint, opts...)
	if err != nil {
		return runError(stderr, err)
	}
	passed := agenttest.Passed(results)
	switch {
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		writeErr = enc.Encode(struct {
			Endpoint string             `json:"endpoint"`
			Passed   bool               `json:"passed"`
			Summary  agenttest.Summary  `json:"summary"`
			Results  []agenttest.Result `json:"results"`
		}{endpoint, passed, agenttest.Summarize(results), results})
	case writeErr == nil && table != nil:
		writeErr = table.Summary(results)
	}
	if writeErr != nil {
		fmt.Fprintf(stderr, "agentcheck: %v\n", writeErr)
		return exitFail
	}
	switch {
	case !passed:
		return exitFail
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "agentcheck: incomplete: the run ended before every check ran (-timeout or an interrupt)")
		return exitIncomplete
	}
	return exitPass
}

// runError prints why the suite could not run in one line and returns the
// exit status for it.
func runError(stderr io.Writer, err error) int {
	msg := err.Error()
	var e *agentwire.Error
	if errors.As(err, &e) {
		msg = e.Message()
	}
	if hasCode(err, agentwire.CodeUnimplemented) {
		msg += " (is -service the agent's gRPC service?)"
	}
	fmt.Fprintf(stderr, "agentcheck: %s\n", msg)
	switch {
	case agentwire.CodeOf(err) == agentwire.CodeInvalidArgument:
		return exitUsage
	case errors.Is(err, agenttest.ErrUnreachable), errors.Is(err, agenttest.ErrNoAgent):
		return exitNoAgent
	}
	return exitIncomplete // interrupted during the handshake
}

// hasCode reports whether an *agentwire.Error with code is anywhere in
// err's tree: a transport error wraps the server's answer.
func hasCode(err error, code agentwire.Code) bool {
	if e, ok := err.(*agentwire.Error); ok && e.Code() == code {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		return slices.ContainsFunc(u.Unwrap(), func(e error) bool { return hasCode(e, code) })
	case interface{ Unwrap() error }:
		return hasCode(u.Unwrap(), code)
	}
	return false
}

func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, usageText)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// printChecks lists every check with what it expects.
func printChecks(w io.Writer) {
	infos := agenttest.Checks()
	width := 0
	for _, c := range infos {
		width = max(width, len(c.Name))
	}
	for _, c := range infos {
		desc := c.Description
		if c.Optional {
			desc = "(optional) " + desc
		}
		fmt.Fprintf(w, "%-*s  %s\n", width, c.Name, desc)
	}
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
