package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/transport"
)

// common are the flags every command takes.
type common struct {
	timeout time.Duration
	service string
	json    bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "bound on connecting and on each request")
	fs.StringVar(&c.service, "service", transport.DefaultServiceName, "gRPC service name (e.g. zentinel.agent.v2.AgentServiceV2)")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

// newFlagSet returns a flag set whose usage names the command.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("agentctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: agentctl %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseEndpoint parses flags wherever they appear and returns the one
// positional argument, the endpoint.
func parseEndpoint(fs *flag.FlagSet, args []string) (string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", err
			}
			return "", errUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != 1 {
		fmt.Fprintf(fs.Output(), "%s: want exactly one ENDPOINT, got %d arguments\n", fs.Name(), len(pos))
		fs.Usage()
		return "", errUsage
	}
	return pos[0], nil
}

// headerFlag collects repeated -H 'name: value' flags.
type headerFlag [][2]string

func (h *headerFlag) String() string {
	parts := make([]string, len(*h))
	for i, kv := range *h {
		parts[i] = kv[0] + ": " + kv[1]
	}
	return strings.Join(parts, ", ")
}

func (h *headerFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("header %q: want 'name: value'", s)
	}
	*h = append(*h, [2]string{name, strings.TrimSpace(value)})
	return nil
}

// dial connects to endpoint and turns failures into clear exit errors:
// status 2 for bad endpoints and for agents that are unreachable or
// incompatible.
func dial(ctx context.Context, endpoint string, c *common, opts ...transport.Option) (transport.Conn, error) {
	opts = append([]transport.Option{
		transport.WithProxyID("agentctl", "1"),
		transport.WithHandshakeTimeout(c.timeout),
		transport.WithCallTimeout(c.timeout),
		transport.WithServiceName(c.service),
	}, opts...)
	conn, err := transport.Dial(ctx, endpoint, opts...)
	if err == nil {
		return conn, nil
	}
	msg := err.Error()
	var e *agentwire.Error
	if errors.As(err, &e) {
		msg = e.Message()
	}
	switch {
	case errors.Is(err, transport.ErrHandshakeRejected), errors.Is(err, transport.ErrIncompatibleVersion),
		errors.Is(err, transport.ErrProtocol):
		return nil, failf(exitUsage, "incompatible agent at %s: %s", endpoint, msg)
	}
	switch {
	case agentwire.CodeOf(err) == agentwire.CodeInvalidArgument:
		return nil, failf(exitUsage, "%s", msg)
	case hasCode(err, agentwire.CodeUnimplemented, agentwire.CodeInternal, agentwire.CodeFailedPrecondition):
		// Something answered, but not the agent protocol (wrong service
		// name, not an agent at all).
		return nil, failf(exitUsage, "incompatible agent at %s: %s", endpoint, msg)
	}
	return nil, failf(exitUsage, "cannot reach %s: %s", endpoint, msg)
}

// hasCode reports whether any *agentwire.Error in err's chain carries one
// of codes: transports wrap the peer's code in their own (a handshake that
// met "unimplemented" fails as "unavailable").
func hasCode(err error, codes ...agentwire.Code) bool {
	var e *agentwire.Error
	if errors.As(err, &e) {
		if slices.Contains(codes, e.Code()) {
			return true
		}
		if inner := e.Unwrap(); inner != nil {
			return hasCode(inner, codes...)
		}
	}
	return false
}

// closeConn closes conn, waiting a bounded time for its goroutines.
func closeConn(conn transport.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// shortCode renders an enum's name without its type prefix:
// HEALTH_STATE_HEALTHY -> HEALTHY.
func shortCode(name, prefix string) string { return strings.TrimPrefix(name, prefix) }
