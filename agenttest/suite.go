package agenttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/transport"
)

// ErrUnreachable: nothing accepts connections at the endpoint
// (CodeUnavailable). [Run] returns it before running any check, so a
// command can tell "no agent there" from "the agent is wrong".
var ErrUnreachable = errors.New("agenttest: agent unreachable")

// unreachableError reads "cannot reach ENDPOINT: why" and matches
// ErrUnreachable.
type unreachableError struct {
	endpoint string
	err      error
}

func (e *unreachableError) Error() string   { return "cannot reach " + e.endpoint + ": " + e.err.Error() }
func (e *unreachableError) Unwrap() []error { return []error{ErrUnreachable, e.err} }

// check is one conformance check. run returns what it observed; an error
// fails the check, a skipError skips it.
type check struct {
	name     string
	optional bool
	// framed checks write raw frames; they are skipped on gRPC and HTTP.
	framed bool
	// standalone checks run even when the handshake check failed.
	standalone bool
	run        func(ctx context.Context, s *suite) (string, error)
}

// skipError marks a check as not applicable.
type skipError struct{ reason string }

func (e skipError) Error() string { return e.reason }

func skip(format string, args ...any) error { return skipError{fmt.Sprintf(format, args...)} }

// checks lists the suite in the order it runs.
var checks = []check{
	{name: "handshake", standalone: true, run: checkHandshake},
	{name: "handshake/unsupported-version", standalone: true, run: checkUnsupportedVersion},
	{name: "event/configure", run: eventCheck(kindConfigure)},
	{name: "event/request_headers", run: eventCheck(kindRequestHeaders)},
	{name: "event/request_body_chunk", run: eventCheck(kindRequestBodyChunk)},
	{name: "event/response_headers", run: eventCheck(kindResponseHeaders)},
	{name: "event/response_body_chunk", run: eventCheck(kindResponseBodyChunk)},
	{name: "event/websocket_frame", run: eventCheck(kindWebSocketFrame)},
	{name: "event/guardrail", run: eventCheck(kindGuardrail)},
	{name: "event/request_complete", run: eventCheck(kindRequestComplete)},
	{name: "decision/block", run: checkBlock},
	{name: "decision/allow", run: checkAllow},
	{name: "decision/header-mutation", run: checkMutation},
	{name: "concurrency/many-in-flight", run: checkManyInFlight},
	{name: "concurrency/same-request", run: checkSameRequest},
	{name: "cancel", run: checkCancel},
	{name: "ping", run: checkPing},
	{name: "health", run: checkHealth},
	{name: "frames/malformed", framed: true, run: checkMalformed},
	{name: "frames/oversize", framed: true, run: checkOversize},
	{name: "frames/unknown-type", framed: true, run: checkUnknownType},
	{name: "flow-control", optional: true, run: checkFlowControl},
}

// CheckNames lists the names of every check, in the order they run.
func CheckNames() []string {
	names := make([]string, len(checks))
	for i, c := range checks {
		names[i] = c.name
	}
	return names
}

// suite is one run's state. Checks run one after another on the goroutine
// of Run; only the connections they open run goroutines of their own.
type suite struct {
	cfg      *config
	endpoint string
	// socket is the Unix socket path for framed checks, "" for other schemes.
	socket string
	prefix string // correlation-id prefix of this run
	seq    atomic.Uint64

	mu     sync.Mutex // mu guards shared
	shared transport.Conn
}

// Run runs the conformance suite against the agent at endpoint (see
// transport.Dial for the schemes) and returns one Result per check, in
// order. ctx bounds the whole run; checks that had no time left fail. The
// error is non-nil only when the suite could not run at all: an invalid
// endpoint (CodeInvalidArgument) or nothing listening there
// ([ErrUnreachable], CodeUnavailable).
func Run(ctx context.Context, endpoint string, opts ...Option) ([]Result, error) {
	cfg := newConfig(opts)
	s := &suite{cfg: cfg, endpoint: endpoint, prefix: "agenttest-" + cfg.newID()}
	network, addr, err := s.parseEndpoint()
	if err != nil {
		return nil, err
	}
	if err := reachable(ctx, network, addr, cfg.checkTimeout); err != nil {
		return nil, agentwire.NewError(agentwire.CodeUnavailable, &unreachableError{endpoint: endpoint, err: err})
	}
	defer s.closeShared()

	var results []Result
	handshakeOK := true
	for _, c := range checks {
		if cfg.only != nil && !cfg.only[c.name] {
			continue
		}
		r := s.runCheck(ctx, c, handshakeOK)
		if c.name == "handshake" && !r.Passed {
			handshakeOK = false
		}
		results = append(results, r)
	}
	return results, nil
}

func (s *suite) runCheck(ctx context.Context, c check, handshakeOK bool) Result {
	r := Result{Name: c.name, Optional: c.optional}
	switch {
	case c.framed && s.socket == "":
		r.Skipped, r.Detail = true, "framed transports only (unix://)"
		return r
	case !handshakeOK && !c.standalone:
		r.Detail = "not run: the handshake check failed"
		return r
	}
	if ctx.Err() != nil {
		r.Detail = "not run: the suite's time ran out"
		return r
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.checkTimeout)
	defer cancel()
	start := time.Now()
	detail, err := c.run(cctx, s)
	r.Duration = time.Since(start)
	var sk skipError
	switch {
	case errors.As(err, &sk):
		r.Skipped, r.Detail = true, sk.reason
	case err != nil:
		r.Detail = err.Error()
		if cctx.Err() != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			r.Detail += fmt.Sprintf(" (check timed out after %v)", s.cfg.checkTimeout)
		}
	default:
		r.Passed, r.Detail = true, detail
	}
	return r
}

// parseEndpoint finds the address to probe and, for unix://, the socket
// path the framed checks dial.
func (s *suite) parseEndpoint() (network, addr string, err error) {
	u, err := url.Parse(s.endpoint)
	if err != nil {
		return "", "", agentwire.Errorf(agentwire.CodeInvalidArgument, "endpoint %q: %w", s.endpoint, err)
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Opaque
		}
		if path == "" {
			return "", "", agentwire.Errorf(agentwire.CodeInvalidArgument, "endpoint %q: no socket path", s.endpoint)
		}
		s.socket = path
		return "unix", path, nil
	case "grpc", "grpcs", "http", "https":
		if u.Host == "" {
			return "", "", agentwire.Errorf(agentwire.CodeInvalidArgument, "endpoint %q: no host", s.endpoint)
		}
		host := u.Host
		if u.Port() == "" {
			port := "80"
			if u.Scheme == "https" || u.Scheme == "grpcs" {
				port = "443"
			}
			host = net.JoinHostPort(u.Hostname(), port)
		}
		return "tcp", host, nil
	}
	return "", "", agentwire.Errorf(agentwire.CodeInvalidArgument,
		"endpoint %q: unknown scheme %q (want unix, grpc, grpcs, http or https)", s.endpoint, u.Scheme)
}

// reachable opens and closes one plain connection to the endpoint.
func reachable(ctx context.Context, network, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return err
	}
	return nc.Close()
}

// dial opens a new connection to the agent with the suite's options plus
// extra ones.
func (s *suite) dial(ctx context.Context, extra ...transport.Option) (transport.Conn, error) {
	timeout := s.cfg.checkTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	opts := []transport.Option{
		transport.WithProxyID("agenttest", "1"),
		transport.WithHandshakeTimeout(timeout),
		transport.WithCallTimeout(s.cfg.checkTimeout),
		transport.WithLogger(s.cfg.logger),
		transport.WithClock(s.cfg.now),
	}
	opts = append(opts, s.cfg.transportOpts...)
	opts = append(opts, extra...)
	return transport.Dial(ctx, s.endpoint, opts...)
}

// conn returns the connection the event and decision checks share,
// dialling a new one if there is none or the last one failed.
func (s *suite) conn(ctx context.Context) (transport.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shared != nil {
		if s.shared.Err() == nil {
			return s.shared, nil
		}
		closeConn(s.shared)
		s.shared = nil
	}
	c, err := s.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s.shared = c
	return c, nil
}

func (s *suite) closeShared() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shared != nil {
		closeConn(s.shared)
		s.shared = nil
	}
}

// closeGrace bounds how long closing a connection may wait for its
// goroutines.
const closeGrace = 5 * time.Second

func closeConn(c transport.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	_ = c.Close(ctx)
}

// corrID returns a correlation id unique within the run.
func (s *suite) corrID() string {
	return fmt.Sprintf("%s-%d", s.prefix, s.seq.Add(1))
}
