// Command agentctl is an operator's tool for any agentwire (Sentinel v2)
// agent, whatever its language: it connects as a proxy would.
//
//	agentctl probe ENDPOINT              handshake, capabilities, first health report, ping RTT
//	agentctl send ENDPOINT -uri /x ...   send a request (headers, optional body), print the decisions
//	agentctl watch ENDPOINT [-for 30s]   stream the health and metrics reports of one connection
//	agentctl shadow URL                  a proxy's shadow-agent comparison (package shadow's report)
//	agentctl trace TRACE-ID|--last       a trace from Jaeger's query API, as a text waterfall
//
// ENDPOINT is unix:///path/agent.sock, grpc://host:port, grpcs://host:port,
// http://host:port (Connect/gRPC over h2c) or https://host:port; -cacert,
// -cert, -key and -server-name configure TLS for grpcs and https.
//
// Exit status: 0 success; 1 the agent answered with an error or the
// connection failed midway; 2 usage; 3 no agent could be reached; 4 a peer
// answered but is not a compatible agent; 5 the request was blocked (send
// with -fail-on-block).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses.
const (
	exitOK           = 0
	exitFail         = 1
	exitUsage        = 2
	exitUnreachable  = 3
	exitIncompatible = 4
	exitBlocked      = 5
)

// exitError carries an exit status and the message printed for it.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func failf(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// errUsage: the usage was printed already; exit 2 quietly.
var errUsage = errors.New("usage")

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"probe", "handshake, capabilities, first health report and ping RTT", runProbe},
	{"send", "send a request's headers (and body) and print the decisions", runSend},
	{"watch", "stream health and metrics reports", runWatch},
	{"shadow", "show a proxy's shadow-agent comparison (its shadow report URL)", runShadow},
	{"trace", "print a trace from Jaeger's query API as a text waterfall", runTrace},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: agentctl COMMAND ENDPOINT [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-6s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nENDPOINT: unix:///path.sock, grpc://host:port, grpcs://host:port, http://host:port, https://host:port")
	fmt.Fprintln(w, "'agentctl COMMAND -h' lists a command's flags.")
	fmt.Fprintln(w, "\nexit status: 0 ok, 1 agent error or connection lost midway, 2 usage,")
	fmt.Fprintln(w, "3 unreachable, 4 not a compatible agent, 5 blocked (send -fail-on-block)")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		if wantsHelp(args[1:]) {
			_ = c.run(ctx, []string{"-h"}, stdout, stdout) // help goes to stdout, as the top level's
			return exitOK
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		var ee *exitError
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.Is(err, errUsage):
			return exitUsage
		case errors.As(err, &ee):
			fmt.Fprintf(stderr, "agentctl: %s\n", ee.msg)
			return ee.code
		}
		fmt.Fprintf(stderr, "agentctl: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stderr, "agentctl: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

// wantsHelp reports whether args ask for a command's help.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			return true
		case "--":
			return false
		}
	}
	return false
}
