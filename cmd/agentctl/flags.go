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
	tls     tlsFlags
}

func (c *common) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "bound on connecting and on each request")
	fs.StringVar(&c.service, "service", transport.DefaultServiceName, "gRPC service name (e.g. zentinel.agent.v2.AgentServiceV2)")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	fs.StringVar(&c.tls.caFile, "cacert", "", "PEM file of the CA that signed the agent's certificate (grpcs, https)")
	fs.StringVar(&c.tls.certFile, "cert", "", "PEM client certificate, with -key (grpcs, https)")
	fs.StringVar(&c.tls.keyFile, "key", "", "PEM client key, with -cert (grpcs, https)")
	fs.StringVar(&c.tls.serverName, "server-name", "", "name to verify the agent's certificate against (default: the endpoint's host)")
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

// dial connects to endpoint and turns failures into exit errors that say
// what went wrong and what to try.
func dial(ctx context.Context, endpoint string, c *common, opts ...transport.Option) (transport.Conn, error) {
	tlsCfg, err := c.tls.config()
	if err != nil {
		return nil, err
	}
	if err := checkEndpoint(endpoint, tlsCfg != nil); err != nil {
		return nil, err
	}
	opts = append([]transport.Option{
		transport.WithProxyID("agentctl", "1"),
		transport.WithHandshakeTimeout(c.timeout),
		transport.WithCallTimeout(c.timeout),
		transport.WithServiceName(c.service),
	}, opts...)
	if tlsCfg != nil {
		opts = append(opts, transport.WithTLSConfig(tlsCfg))
	}
	conn, err := transport.Dial(ctx, endpoint, opts...)
	if err == nil {
		return conn, nil
	}
	return nil, dialFailure(ctx, endpoint, c, err)
}

// dialFailure classifies a failed dial: usage, unreachable, or a peer that
// is not a compatible agent.
func dialFailure(ctx context.Context, endpoint string, c *common, err error) error {
	msg := describeErr(err)
	switch {
	case errors.Is(err, transport.ErrHandshakeRejected), errors.Is(err, transport.ErrIncompatibleVersion),
		errors.Is(err, transport.ErrProtocol):
		return failf(exitIncompatible, "incompatible agent at %s: %s", endpoint, msg)
	case agentwire.CodeOf(err) == agentwire.CodeInvalidArgument:
		return failf(exitUsage, "%s", msg)
	case hasCode(err, agentwire.CodeUnimplemented):
		return failf(exitIncompatible, "incompatible agent at %s: %s (not an agent, or it serves the protocol under another service name: try -service, e.g. -service zentinel.agent.v2.AgentServiceV2)", endpoint, msg)
	case hasCode(err, agentwire.CodeInternal, agentwire.CodeFailedPrecondition):
		return failf(exitIncompatible, "incompatible agent at %s: %s", endpoint, msg)
	case hasCode(err, agentwire.CodeDeadlineExceeded) && ctx.Err() == nil:
		return failf(exitUnreachable, "no answer from %s within -timeout %v: %s (the agent is stopped, hung or overloaded; raise -timeout if it is only slow)", endpoint, c.timeout, msg)
	}
	if host := hostOf(endpoint); host != "" && speaksHTTP1(ctx, host) {
		return failf(exitIncompatible, "the server at %s speaks HTTP/1.1, not gRPC (HTTP/2): is this the agent's address?", endpoint)
	}
	return failf(exitUnreachable, "cannot reach %s: %s", endpoint, msg)
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
