package agent

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire/refenc"
)

// Defaults of a [ReverseDialer].
const (
	// DefaultReconnectMin and DefaultReconnectMax bound the exponential
	// backoff between connection attempts.
	DefaultReconnectMin = 100 * time.Millisecond
	DefaultReconnectMax = 30 * time.Second
	// DefaultRegistrationTimeout bounds dialling, the TLS handshake and the
	// registration exchange.
	DefaultRegistrationTimeout = 10 * time.Second
)

// stableConnection is how long a connection must last for the next attempt
// to start again from the shortest backoff.
const stableConnection = 5 * time.Second

// maxRegistrationAnswer bounds the proxy's registration answer.
const maxRegistrationAnswer = 1 << 20

// ErrRegistrationRejected: the proxy refused the agent's registration. It
// is wrapped in an *agentwire.Error whose code is the proxy's reason
// (CodeUnknown if it gave none). The dialer retries, at the longest backoff
// after refusals that retrying soon cannot fix (see [ReverseDialer]).
var ErrRegistrationRejected = errors.New("agent: registration rejected by the proxy")

// ReverseDialStats is a snapshot of a dialer's counters.
type ReverseDialStats struct {
	// Connected is how many connections are registered and being served now;
	// Refused how many are waiting to retry after the proxy refused their
	// last registration.
	Connected, Refused int
	// Registered counts accepted registrations, Rejected refused ones, and
	// Failed attempts that broke before an answer (dial, TLS, I/O).
	Registered, Rejected, Failed uint64
}

// ReverseDialer connects an agent to a proxy that cannot dial it (NAT,
// firewalls, autoscaling): it dials the proxy's reverse listener, registers
// with the server's agent id, capabilities and a token, then serves the
// connection with [Server.ServeConn]. Lost or refused connections are
// retried with exponential backoff and jitter until Run's context ends,
// Close is called, or the server shuts down. A refusal for capacity
// (ResourceExhausted) is retried once soon, in case the proxy had not yet
// seen a connection end, then at the longest backoff; the first refusal of
// a streak is logged, not each attempt.
//
// A ReverseDialer is safe for concurrent use; Run may be called once.
// Close waits for every goroutine it started.
type ReverseDialer struct {
	srv     *Server
	network string
	address string
	host    string
	cfg     reverseDialConfig

	connected  atomic.Int64
	refusing   atomic.Int64 // connections whose last registration was refused
	registered atomic.Uint64
	rejected   atomic.Uint64
	failed     atomic.Uint64

	mu sync.Mutex // mu guards the following
	// closed only goes from false to true; done is set by Run and closed
	// when it returns.
	closed bool
	done   chan struct{}
	cancel context.CancelFunc
}

// NewReverseDialer returns a dialer that will serve srv to the proxy at
// addr: "unix:///path/to.sock" or "tcp://host:port" (with TLS given by
// [WithTLSConfig]). It fails with CodeInvalidArgument on a bad address
// or option.
func NewReverseDialer(srv *Server, addr string, opts ...ReverseDialOption) (*ReverseDialer, error) {
	cfg := reverseDialConfig{
		conns:       1,
		minBackoff:  DefaultReconnectMin,
		maxBackoff:  DefaultReconnectMax,
		timeout:     DefaultRegistrationTimeout,
		rand:        rand.Uint64,
		stableAfter: stableConnection,
	}
	for _, o := range opts {
		o.applyReverseDial(&cfg)
	}
	d := &ReverseDialer{srv: srv, cfg: cfg}
	errs := []error{d.parseAddr(addr)}
	for _, check := range []struct {
		bad  bool
		what string
	}{
		{srv == nil, "nil server"},
		{cfg.conns <= 0, "connections must be positive"},
		{cfg.minBackoff <= 0 || cfg.maxBackoff < cfg.minBackoff, "backoff needs 0 < min <= max"},
		{cfg.timeout <= 0, "registration timeout must be positive"},
		{cfg.rand == nil, "nil random source"},
	} {
		if check.bad {
			errs = append(errs, errors.New(check.what))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, agentwire.NewError(agentwire.CodeInvalidArgument, fmt.Errorf("agent: reverse dialer: %w", err))
	}
	return d, nil
}

func (d *ReverseDialer) parseAddr(addr string) error {
	u, err := url.Parse(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	switch u.Scheme {
	case "unix":
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		if p == "" {
			return fmt.Errorf("address %q: no socket path", addr)
		}
		d.network, d.address = "unix", p
	case "tcp":
		host, _, err := net.SplitHostPort(u.Host)
		if err != nil {
			return fmt.Errorf("address %q: %w", addr, err)
		}
		d.network, d.address, d.host = "tcp", u.Host, host
	default:
		return fmt.Errorf("address %q: scheme must be unix or tcp", addr)
	}
	return nil
}

// DialReverse serves srv to the proxy at addr over reverse connections
// until ctx ends or the server shuts down; see [ReverseDialer]. It returns
// nil then, and an error only for a bad address or option.
func DialReverse(ctx context.Context, srv *Server, addr string, opts ...ReverseDialOption) error {
	d, err := NewReverseDialer(srv, addr, opts...)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// Run keeps the configured number of connections registered and served
// until ctx ends, Close is called, or the server shuts down, then returns
// nil once all of them have ended. Calling it twice, or after Close, fails
// with CodeFailedPrecondition.
func (d *ReverseDialer) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.done != nil || d.closed {
		d.mu.Unlock()
		return agentwire.Errorf(agentwire.CodeFailedPrecondition, "agent: reverse dialer already run or closed")
	}
	done := make(chan struct{})
	d.done = done
	ctx, d.cancel = context.WithCancel(ctx)
	d.mu.Unlock()
	defer close(done)
	defer d.cancel()
	var wg sync.WaitGroup
	for range d.cfg.conns {
		wg.Go(func() { d.keep(ctx) })
	}
	wg.Wait()
	return nil
}

// Close stops the dialer: it closes its connections (cancelling their
// handlers) and waits, honouring ctx, for its goroutines. Run returns.
// Close is idempotent.
func (d *ReverseDialer) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	done := d.done
	if d.cancel != nil {
		d.cancel()
	}
	d.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return agentwire.WrapContextError(ctx.Err())
	}
}

// Stats returns the dialer's counters.
func (d *ReverseDialer) Stats() ReverseDialStats {
	return ReverseDialStats{
		Connected:  int(d.connected.Load()),
		Refused:    int(d.refusing.Load()),
		Registered: d.registered.Load(),
		Rejected:   d.rejected.Load(),
		Failed:     d.failed.Load(),
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// connect dials and registers a connection, ready for the proxy's handshake.
func (d *ReverseDialer) connect(ctx context.Context) (net.Conn, error) {
	rctx, cancel := context.WithTimeout(ctx, d.cfg.timeout)
	defer cancel()
	fail := func(what string, err error) (net.Conn, error) {
		d.failed.Add(1)
		return nil, d.ioErr(ctx, rctx, what, err)
	}
	nc, err := d.cfg.dialer.DialContext(rctx, d.network, d.address)
	if err != nil {
		return fail("dial", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = nc.Close()
		}
	}()
	deadline, _ := rctx.Deadline()
	_ = nc.SetDeadline(deadline)
	unblock := context.AfterFunc(rctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer unblock()
	if d.cfg.tlsConfig != nil {
		cfg := d.cfg.tlsConfig
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify && d.host != "" {
			cfg = cfg.Clone()
			cfg.ServerName = d.host
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(rctx); err != nil {
			_ = tc.Close()
			return fail("tls handshake", err)
		}
		nc = tc
	}
	resp, err := d.register(nc)
	if err != nil {
		return fail("registration", err)
	}
	if !resp.GetAccepted() {
		d.rejected.Add(1)
		return nil, rejectionError(agentwire.Code(resp.GetCode()), resp.GetError())
	}
	if !unblock() || rctx.Err() != nil {
		return fail("registration", rctx.Err())
	}
	_ = nc.SetDeadline(time.Time{})
	d.registered.Add(1)
	if f := d.cfg.onRegistered; f != nil {
		f(resp)
	}
	d.srv.cfg.logger.Debug("agent: registered with proxy", "addr", d.address,
		"connection_id", resp.GetConnectionId(), "proxy_id", resp.GetProxyId())
	ok = true
	if d.cfg.zentinel {
		return &refConn{Conn: nc, ref: newReverseRef(resp.GetProxyId())}, nil
	}
	return nc, nil
}

// refConn is a connection registered with a reference proxy, which sends
// JSON events with no handshake.
type refConn struct {
	net.Conn
	ref *refState
}

// serve serves a registered connection until it ends.
func (d *ReverseDialer) serve(ctx context.Context, nc net.Conn) error {
	if rc, ok := nc.(*refConn); ok {
		return d.srv.serveConn(ctx, rc.Conn, rc.ref)
	}
	return d.srv.ServeConn(ctx, nc)
}

func (d *ReverseDialer) ioErr(ctx, rctx context.Context, what string, err error) error {
	switch {
	case ctx.Err() != nil:
		return agentwire.WrapContextError(ctx.Err())
	case rctx.Err() != nil || isTimeout(err):
		return agentwire.Errorf(agentwire.CodeDeadlineExceeded, "agent: %s %s: no answer within %v", what, d.address, d.cfg.timeout)
	}
	if agentwire.CodeOf(err) != agentwire.CodeUnknown {
		return fmt.Errorf("agent: %s %s: %w", what, d.address, err)
	}
	return agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("agent: %s %s: %w", what, d.address, err))
}

// register sends the registration and reads exactly one frame, the answer:
// the proxy's handshake (or, from a reference proxy, an event) may follow in
// the same segment.
func (d *ReverseDialer) register(nc net.Conn) (*agentv2.RegistrationResponse, error) {
	caps, _ := d.srv.handshakeResponse(&agentv2.HandshakeRequest{SupportedVersions: []uint32{ProtocolVersion}}, d.srv.cfg.healthInterval, nil)
	reg := &agentv2.RegistrationRequest{
		ProtocolVersion: ProtocolVersion,
		AgentId:         d.srv.cfg.agentID,
		Capabilities:    caps.GetCapabilities(),
		AuthToken:       d.cfg.token,
		Metadata:        d.cfg.metadata,
	}
	answer := agentv2.ProxyToAgentFrameRegistrationResponse
	if d.cfg.zentinel {
		frame, err := refenc.AppendRegistration(nil, reg)
		if err != nil {
			return nil, err
		}
		if _, err := nc.Write(frame); err != nil {
			return nil, err
		}
		answer = agentv2.AgentToProxyFrameHandshake // reverse.rs answers on 0x02
	} else {
		req := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Registration{Registration: reg}}
		if err := codec.WriteFrameTo(nc, req, d.srv.cfg.maxFrameSize); err != nil {
			return nil, err
		}
	}
	var hdr [agentv2.FrameHeaderSize]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:4]))
	t := agentv2.FrameType(hdr[4])
	if n == 0 || n > maxRegistrationAnswer {
		return nil, agentwire.Errorf(agentwire.CodeInternal, "%w: registration answer of %d bytes", errProtocol, n)
	}
	if t != answer {
		return nil, agentwire.Errorf(agentwire.CodeInternal, "%w: expected a registration answer, got frame type 0x%02x", errProtocol, uint8(t))
	}
	payload := make([]byte, n-1)
	if _, err := io.ReadFull(nc, payload); err != nil {
		return nil, err
	}
	if d.cfg.zentinel {
		return refenc.RegistrationResponseIn(payload)
	}
	var msg agentv2.ProxyToAgent
	if err := codec.Decode(&msg, t, payload, agentv2.IsProxyToAgentFrame, false); err != nil {
		return nil, err
	}
	return msg.GetRegistrationResponse(), nil
}
