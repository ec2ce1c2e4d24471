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
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
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

// ErrNoAgent: something accepts connections at the endpoint, but no
// handshake with an agent completed there (not an agent, a stalled one, a
// rejected offer of version 2). [Run] returns it before any result.
var ErrNoAgent = errors.New("agenttest: no agent handshake")

// noAgentError reads "no agent at ENDPOINT: the handshake failed: why" and
// matches ErrNoAgent.
type noAgentError struct {
	endpoint string
	err      error
}

func (e *noAgentError) Error() string {
	msg := e.err.Error()
	if ae := (*agentwire.Error)(nil); errors.As(e.err, &ae) {
		msg = ae.Message() // without the code's name
	}
	return "no agent at " + e.endpoint + ": the handshake failed: " + msg
}

func (e *noAgentError) Unwrap() []error { return []error{ErrNoAgent, e.err} }

// skipError marks a check as not applicable.
type skipError struct{ reason string }

func (e skipError) Error() string { return e.reason }

func skip(format string, args ...any) error { return skipError{fmt.Sprintf(format, args...)} }

// probeTimeout bounds a check of something the agent did not advertise.
const probeTimeout = 2 * time.Second

// suite is one run's state. Checks run one after another on the goroutine
// of Run; only the connections they open run goroutines of their own.
type suite struct {
	cfg      *config
	endpoint string
	// socket is the Unix socket path for framed checks, "" for other schemes.
	socket string
	prefix string // correlation-id prefix of this run
	seq    atomic.Uint64
	caps   *agentv2.AgentCapabilities // from the first handshake
	// encoding is the first connection's (transport.EncodingOf).
	encoding string

	mu     sync.Mutex // mu guards shared
	shared transport.Conn
}

// Run runs the conformance suite against the agent at endpoint (see
// transport.Dial for the schemes) and returns one Result per check, in
// order. Each check has its own budget ([WithCheckTimeout]); ctx bounds
// the whole run, and checks it stops are skipped, never failed. The error
// is non-nil only when the suite could not run at all: an invalid endpoint
// (CodeInvalidArgument), nothing listening there ([ErrUnreachable],
// CodeUnavailable), or no agent handshake there ([ErrNoAgent]).
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
	if err := s.handshake(ctx); err != nil {
		return nil, err
	}
	var results []Result
	for _, c := range checks {
		if cfg.only != nil && !cfg.only[c.name] {
			continue
		}
		r := s.runCheck(ctx, c)
		results = append(results, r)
		if cfg.onResult != nil {
			cfg.onResult(r)
		}
	}
	return results, nil
}

// handshake opens the shared connection and learns the agent's
// capabilities: without them no check can run.
func (s *suite) handshake(ctx context.Context) error {
	hctx, cancel := context.WithTimeout(ctx, s.cfg.checkTimeout)
	defer cancel()
	c, err := s.dial(hctx)
	if err == nil && ctx.Err() != nil {
		closeConn(c)
	}
	switch {
	case ctx.Err() != nil:
		return agentwire.NewError(agentwire.CodeOf(ctx.Err()), fmt.Errorf("handshake: %w", ctx.Err()))
	case err != nil:
		return agentwire.NewError(agentwire.CodeOf(err), &noAgentError{endpoint: s.endpoint, err: err})
	}
	s.mu.Lock()
	s.shared, s.caps, s.encoding = c, c.Capabilities(), transport.EncodingOf(c)
	s.mu.Unlock()
	return nil
}

func (s *suite) runCheck(ctx context.Context, c check) Result {
	r := Result{Name: c.name, Optional: c.optional}
	budget, lack := s.cfg.checkTimeout, ""
	switch {
	case c.framed && s.socket == "":
		r.Skipped, r.Detail = true, "framed transports only (unix://)"
		return r
	case c.framed && s.encoding != "" && s.encoding != string(transport.UnixProtobuf):
		r.Skipped, r.Detail = true, "protobuf frames only (the agent speaks the reference's "+s.encoding+")"
		return r
	case ctx.Err() != nil:
		r.Skipped, r.Detail = true, "not run: "+suiteEnded(ctx)
		return r
	}
	if c.advertised != nil {
		if ok, why := c.advertised(s.caps); !ok {
			if !c.probe {
				r.Skipped, r.Detail = true, "not advertised: "+why
				return r
			}
			r.Optional, budget, lack = true, min(budget, probeTimeout), why
		}
	}
	cctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	start := time.Now()
	detail, err := c.run(cctx, s)
	r.Duration = time.Since(start)
	var sk skipError
	switch {
	case errors.As(err, &sk):
		r.Skipped, r.Detail = true, sk.reason
	case err != nil && ctx.Err() != nil:
		r.Skipped, r.Detail = true, "not finished: "+suiteEnded(ctx)
	case err != nil:
		r.Detail = err.Error()
		if cctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
			r.Detail += fmt.Sprintf(" (check timed out after %v)", budget)
		}
		if lack != "" {
			r.Detail = lack + "; docs/protocol.md §6 still asks for an answer: " + r.Detail
		}
	default:
		r.Passed, r.Detail = true, detail
		if lack != "" {
			r.Detail = lack + "; answered all the same: " + detail
		}
	}
	return r
}

// suiteEnded says why the suite's context ended.
func suiteEnded(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "the suite's time ran out"
	}
	return "the run was cancelled"
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
