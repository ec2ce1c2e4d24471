package transport

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// TransportReverse names connections that agents dialled to the proxy.
const TransportReverse = "reverse"

// Defaults of a [ReverseListener].
const (
	// DefaultRegistrationTimeout bounds the TLS handshake, reading the
	// registration and writing the answer.
	DefaultRegistrationTimeout = 5 * time.Second
	// DefaultMaxConnsPerAgent is how many live connections one agent id may
	// hold, unless [WithAdmission] sets the limit.
	DefaultMaxConnsPerAgent = 16
	// DefaultMaxPendingRegistrations is how many connections may be in
	// registration (or the handshake after it) at once; further ones are
	// closed as soon as they are accepted.
	DefaultMaxPendingRegistrations = 128
	// MaxRegistrationFrame is the largest registration frame accepted, so a
	// client that has not authenticated yet cannot make the proxy buffer more.
	MaxRegistrationFrame = 64 << 10
	// MaxAgentIDLength bounds an agent id, in bytes.
	MaxAgentIDLength = 256
)

// ErrListenerClosed: Serve or a Listen method was called on a closed
// [ReverseListener] (CodeUnavailable).
var ErrListenerClosed = errors.New("transport: reverse listener closed")

// AdmitFunc receives a connection that passed registration and the
// handshake. It owns c from then on (the pool adopts it). It runs on the
// registration's goroutine, which the listener waits for in Close: hand c
// over and return. If the listener is closing with [WithCloseConnsOnClose],
// c may already be closed.
type AdmitFunc func(agentID string, c Conn, reg *agentv2.RegistrationRequest)

// RejectFunc is told about every connection that was not admitted: refused
// at registration, dropped at the timeout, or failed in the handshake.
// err is an *agentwire.Error: InvalidArgument (malformed registration or
// agent id), FailedPrecondition (protocol version), PermissionDenied (not
// allowlisted), Unauthenticated (token, verifier, TLS), ResourceExhausted
// (connection cap, too many pending), DeadlineExceeded (too slow),
// Unavailable or Canceled (the peer left, the listener closed), or the
// handshake's error. agentID is empty if unknown. It must not block.
type RejectFunc func(peer net.Addr, agentID string, err error)

// TokenVerifier authenticates a registration the configured tokens did not
// (for example a signed token). A nil error admits the agent (subject to
// the connection cap); an error rejects it as Unauthenticated, or with the
// error's own code if it is an *agentwire.Error of PermissionDenied or
// Unauthenticated. Its message is reported to the [RejectFunc] but not
// sent to the agent. ctx ends at the registration deadline; on TLS
// listeners [PeerTLSState] returns the peer's verified certificates.
type TokenVerifier func(ctx context.Context, reg *agentv2.RegistrationRequest, peer net.Addr) error

// ReverseOption configures a [ReverseListener].
type ReverseOption interface{ applyReverse(*reverseConfig) }

type reverseOptionFunc func(*reverseConfig)

func (f reverseOptionFunc) applyReverse(c *reverseConfig) { f(c) }

type reverseConfig struct {
	connOpts      []Option
	connOptsFor   func(agentID string, reg *agentv2.RegistrationRequest) []Option
	timeout       time.Duration
	maxPerAgent   int
	maxPerAgentOK bool // set by WithMaxConnsPerAgent
	admission     AdmissionFunc
	maxPending    int
	allow         []string
	agentTokens   map[string][][sha256.Size]byte
	globalTokens  [][sha256.Size]byte
	verifier      TokenVerifier
	noAuth        bool
	admit         AdmitFunc
	reject        RejectFunc
	closeConns    bool
	configFor     func(*agentv2.RegistrationRequest) string
	randRead      func([]byte) (int, error)
	acceptBackoff time.Duration
	// peerFailures and peerCooldown: see WithPeerCooldown.
	peerFailures int
	peerCooldown time.Duration
	now          func() time.Time
}

// WithConnOptions sets the options of the connections the listener admits
// (proxy id and version, timeouts, handlers, logger); the proxy id and
// version also go into the registration answer.
func WithConnOptions(opts ...Option) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.connOpts = append(c.connOpts, opts...) })
}

// WithConnOptionsFunc adds options chosen per admitted agent, after those of
// [WithConnOptions]: a pool passes its per-agent status, health and
// config-update handlers here (see pool.Pool.ConnOptions), so adopted
// connections report to it like dialled ones.
func WithConnOptionsFunc(f func(agentID string, reg *agentv2.RegistrationRequest) []Option) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.connOptsFor = f })
}

// WithRegistrationTimeout bounds the TLS handshake, reading the registration
// and answering it ([DefaultRegistrationTimeout]). Silent and slow clients
// are dropped when it passes. The protocol handshake after registration has
// its own timeout ([WithHandshakeTimeout] via [WithConnOptions]).
func WithRegistrationTimeout(d time.Duration) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.timeout = d })
}

// WithAllowedAgents admits only agent ids matching one of patterns, matched
// with [path.Match]: '*' matches any run of characters except '/', '?' one
// such character, '[a-z]' a class ("waf-*" matches "waf-1" but not
// "waf/1" or "auth-1"). Without it any id is allowed (still subject to
// authentication). Invalid patterns fail [NewReverseListener].
func WithAllowedAgents(patterns ...string) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.allow = append(c.allow, patterns...) })
}

// WithAgentToken accepts token from agentID. An agent id with tokens of its
// own is checked against those only, never against global tokens.
func WithAgentToken(agentID, token string) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) {
		if c.agentTokens == nil {
			c.agentTokens = make(map[string][][sha256.Size]byte)
		}
		c.agentTokens[agentID] = append(c.agentTokens[agentID], sha256.Sum256([]byte(token)))
	})
}

// WithGlobalToken accepts token from any agent id that has no token of its
// own.
func WithGlobalToken(token string) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) {
		c.globalTokens = append(c.globalTokens, sha256.Sum256([]byte(token)))
	})
}

// WithTokenVerifier authenticates registrations whose token matches no
// configured token.
func WithTokenVerifier(f TokenVerifier) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.verifier = f })
}

// WithoutAuth admits agents without a token. Use it only where something
// else authenticates them: mTLS with verified client certificates, or a
// socket only trusted users can open. Without it (and without tokens or a
// verifier) [NewReverseListener] fails, so nothing is left open by mistake.
func WithoutAuth() ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.noAuth = true })
}

// WithMaxConnsPerAgent caps the live connections of one agent id
// ([DefaultMaxConnsPerAgent]); registrations over it are rejected with
// ResourceExhausted. A connection counts from its acceptance until its
// Conn's Done closes. Not with [WithAdmission], which sets the limit.
func WithMaxConnsPerAgent(n int) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.maxPerAgent, c.maxPerAgentOK = n, true })
}

// WithMaxPendingRegistrations bounds connections in registration at once
// ([DefaultMaxPendingRegistrations]).
func WithMaxPendingRegistrations(n int) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.maxPending = n })
}

// WithAdmitHandler receives admitted connections. Required, unless
// [WithAdmission] admits them.
func WithAdmitHandler(f AdmitFunc) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.admit = f })
}

// WithRejectHandler is told about connections that were not admitted.
func WithRejectHandler(f RejectFunc) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.reject = f })
}

// WithCloseConnsOnClose makes Close also close the connections the listener
// admitted; by default they belong to whoever the admit handler gave them to.
func WithCloseConnsOnClose() ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.closeConns = true })
}

// WithRegistrationConfig sets the configuration JSON sent to an accepted
// agent in its registration answer (none by default; an empty string sends
// none).
func WithRegistrationConfig(f func(reg *agentv2.RegistrationRequest) string) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.configFor = f })
}

// ReverseStats is a snapshot of a listener's counters.
type ReverseStats struct {
	// Pending is connections in registration or handshake now; Live the
	// admitted connections whose Done has not closed.
	Pending, Live int
	// Admitted and Rejected count connections since the listener started.
	Admitted, Rejected uint64
}

// ReverseListener is the proxy side of reverse connections: agents dial it,
// register, and after validation (protocol version, agent id, allowlist,
// token, connection cap, in that order) it runs the framed protocol over
// their connection and hands the resulting [Conn] to the admit handler.
// With [WithAdmission] the cap and the handing over are the admission's:
// a pool passes its own (pool.Pool.ReverseOptions), so that connections
// over its limit are refused at registration, with a reason.
// One listener can serve several net.Listeners (Unix socket and TCP) with
// one set of limits.
//
// A ReverseListener is safe for concurrent use. Every goroutine it starts
// (accept loops of ListenUnix/ListenTCP, one per pending registration, one
// per admitted connection to release its cap slot) exits by Close.
type ReverseListener struct {
	cfg    reverseConfig
	conn   *config // the admitted connections' options, for proxy id and logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine but accept loops run by callers' Serve
	serves sync.WaitGroup // Serve calls in progress
	closed chan struct{}

	mu sync.Mutex // mu guards the following
	// isClosed is set once Close starts; nothing new starts afterwards.
	isClosed  bool
	listeners map[net.Listener]struct{}
	// sockets are Unix socket files to remove on Close.
	sockets  []*unixSocket
	pending  int
	perAgent map[string]int
	live     map[Conn]struct{}
	admitted uint64
	rejected uint64
	// peers counts failed registrations by peer address (WithPeerCooldown);
	// peersPruned is when it was last scanned for expired entries.
	peers       map[string]*peerRecord
	peersPruned time.Time
}

// NewReverseListener validates opts and returns a listener that serves
// nothing yet: call Serve, ListenUnix or ListenTCP.
func NewReverseListener(opts ...ReverseOption) (*ReverseListener, error) {
	cfg := reverseConfig{
		timeout:       DefaultRegistrationTimeout,
		maxPerAgent:   DefaultMaxConnsPerAgent,
		maxPending:    DefaultMaxPendingRegistrations,
		randRead:      rand.Read,
		acceptBackoff: 5 * time.Millisecond,
		now:           time.Now,
	}
	for _, o := range opts {
		o.applyReverse(&cfg)
	}
	var errs []error
	switch {
	case cfg.admission != nil && cfg.admit != nil:
		errs = append(errs, errors.New("WithAdmission and WithAdmitHandler exclude each other"))
	case cfg.admission != nil && cfg.maxPerAgentOK:
		errs = append(errs, errors.New("WithAdmission sets the per-agent limit: drop WithMaxConnsPerAgent"))
	case cfg.admission == nil && cfg.admit == nil:
		errs = append(errs, errors.New("an admit handler is required (WithAdmitHandler or WithAdmission)"))
	}
	if cfg.timeout <= 0 {
		errs = append(errs, errors.New("registration timeout must be positive"))
	}
	if cfg.maxPerAgent <= 0 || cfg.maxPending <= 0 {
		errs = append(errs, errors.New("connection limits must be positive"))
	}
	if cfg.peerFailures < 0 || cfg.peerFailures > 0 && cfg.peerCooldown <= 0 {
		errs = append(errs, errors.New("peer cooldown needs a positive failure count and duration"))
	}
	for _, p := range cfg.allow {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("allowlist pattern %q: %w", p, err))
		}
	}
	if !cfg.noAuth && len(cfg.agentTokens) == 0 && len(cfg.globalTokens) == 0 && cfg.verifier == nil {
		errs = append(errs, errors.New("no authentication configured: set tokens, a verifier, or WithoutAuth"))
	}
	if len(errs) > 0 {
		return nil, agentwire.NewError(agentwire.CodeInvalidArgument, fmt.Errorf("reverse listener: %w", errors.Join(errs...)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &ReverseListener{
		cfg:       cfg,
		conn:      newConfig(cfg.connOpts),
		ctx:       ctx,
		cancel:    cancel,
		closed:    make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		perAgent:  make(map[string]int),
		live:      make(map[Conn]struct{}),
		peers:     make(map[string]*peerRecord),
	}, nil
}

// Serve accepts connections on ln until ctx ends, the listener is closed,
// or ln fails, and closes ln when it returns. Each connection registers on a
// goroutine of its own, so a slow client never holds up the next. It
// returns nil when stopped by ctx or Close, otherwise ln's error.
func (l *ReverseListener) Serve(ctx context.Context, ln net.Listener) error {
	l.mu.Lock()
	if l.isClosed {
		l.mu.Unlock()
		_ = ln.Close()
		return agentwire.NewError(agentwire.CodeUnavailable, ErrListenerClosed)
	}
	l.listeners[ln] = struct{}{}
	l.serves.Add(1)
	l.mu.Unlock()
	defer l.serves.Done()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer func() {
		stop()
		_ = ln.Close()
		l.mu.Lock()
		delete(l.listeners, ln)
		l.mu.Unlock()
	}()

	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || l.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait and retry.
				delay = min(max(2*delay, l.cfg.acceptBackoff), time.Second)
				select {
				case <-time.After(delay):
				case <-l.closed:
				case <-ctx.Done():
				}
				continue
			}
			return agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("reverse listener: accept: %w", err))
		}
		delay = 0
		l.mu.Lock()
		switch {
		case l.isClosed:
			l.mu.Unlock()
			_ = nc.Close()
			return nil
		case l.pending >= l.cfg.maxPending:
			l.rejected++
			l.mu.Unlock()
			_ = nc.Close()
			l.report(nc.RemoteAddr(), "", agentwire.Errorf(agentwire.CodeResourceExhausted,
				"too many pending registrations (%d)", l.cfg.maxPending))
			continue
		}
		if err := l.coolingLocked(peerHost(nc.RemoteAddr()), l.cfg.now()); err != nil {
			l.rejected++
			l.mu.Unlock()
			_ = nc.Close()
			l.report(nc.RemoteAddr(), "", err)
			continue
		}
		l.pending++
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			l.register(nc)
		}()
	}
}

// isTemporary reports accept errors worth retrying (EMFILE, ENFILE,
// ECONNABORTED and the like).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// rejection is a registration refusal: code and the reason told to the agent,
// plus detail for the proxy's own reporting.
type rejection struct {
	code   agentwire.Code
	reason string
	detail error
	// cause, if set, is the error reason is taken from: err wraps it
	// rather than repeat reason.
	cause error
	// capacity marks a refusal for a connection limit, after authentication.
	capacity bool
}

func (r *rejection) err() error {
	if r.cause != nil {
		return agentwire.Errorf(r.code, "registration rejected: %w", r.cause)
	}
	if r.detail != nil {
		return agentwire.Errorf(r.code, "registration rejected: %s: %w", r.reason, r.detail)
	}
	return agentwire.Errorf(r.code, "registration rejected: %s", r.reason)
}

// wireText is what the agent is told: the code's name, then the reason.
func (r *rejection) wireText() string { return r.code.String() + ": " + r.reason }

// register runs one connection through registration and the handshake.
func (l *ReverseListener) register(nc net.Conn) {
	peer := nc.RemoteAddr()
	admitted := false
	// held is the room validate reserved for the connection, handed back
	// unless the connection gets admitted.
	var held *slot
	// peerFault says a failure counts against the peer's address.
	peerFault := true
	var agentID string
	defer func() {
		l.mu.Lock()
		l.pending--
		l.mu.Unlock()
		if !admitted {
			_ = nc.Close()
		}
	}()
	// fail frees the slot before reporting, so that whoever hears of the
	// rejection may register again at once.
	fail := func(err error) {
		if held != nil {
			held.release()
			held = nil
		}
		l.mu.Lock()
		l.rejected++
		l.mu.Unlock()
		if l.ctx.Err() == nil && peerFault {
			l.peerResult(peerHost(peer), false)
		}
		l.report(peer, agentID, err)
	}

	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	// Closing the listener or the deadline ends blocked reads and writes.
	unblock := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer unblock()

	if tc, ok := nc.(*tls.Conn); ok {
		if err := tc.HandshakeContext(ctx); err != nil {
			fail(l.ioErr(ctx, "tls handshake", err, agentwire.CodeUnauthenticated))
			return
		}
		state := tc.ConnectionState()
		ctx = context.WithValue(ctx, tlsStateKey{}, &state)
	}

	reg, rej, ioErr := l.readRegistration(ctx, nc)
	if ioErr != nil {
		fail(ioErr)
		return
	}
	if rej == nil {
		agentID = reg.GetAgentId()
		held, rej = l.validate(ctx, reg, peer)
	}
	if rej != nil {
		peerFault = !rej.capacity
		// Best effort: the client may already be gone.
		text := rej.wireText()
		_ = l.writeResponse(nc, &agentv2.RegistrationResponse{
			Accepted: false, Error: &text, Code: uint32(rej.code),
			ProxyId: l.conn.proxyID, ProxyVersion: l.conn.proxyVersion,
		})
		fail(rej.err())
		return
	}

	defer func() {
		if held != nil {
			held.release()
		}
	}()
	connID, err := l.connectionID()
	if err != nil {
		fail(agentwire.NewError(agentwire.CodeInternal, fmt.Errorf("connection id: %w", err)))
		return
	}
	resp := &agentv2.RegistrationResponse{
		Accepted: true, ProxyId: l.conn.proxyID, ProxyVersion: l.conn.proxyVersion, ConnectionId: connID,
	}
	if l.cfg.configFor != nil {
		if js := l.cfg.configFor(reg); js != "" {
			resp.ConfigJson = &js
		}
	}
	if err := l.writeResponse(nc, resp); err != nil {
		fail(l.ioErr(ctx, "registration answer", err, agentwire.CodeUnavailable))
		return
	}
	if !unblock() || ctx.Err() != nil {
		fail(l.ioErr(ctx, "registration answer", ctx.Err(), agentwire.CodeUnavailable))
		return
	}
	_ = nc.SetDeadline(time.Time{})

	// The framed protocol, exactly as over a Unix socket. Closing the
	// listener cancels l.ctx, which aborts the handshake.
	opts := l.cfg.connOpts
	if f := l.cfg.connOptsFor; f != nil {
		opts = append(append([]Option(nil), opts...), f(reg.GetAgentId(), reg)...)
	}
	c, err := NewFramedConn(l.ctx, nc, TransportReverse, opts...)
	if err != nil {
		if l.ctx.Err() != nil {
			err = agentwire.Errorf(agentwire.CodeCanceled, "handshake: %w", ErrListenerClosed)
		}
		fail(err)
		return
	}
	l.mu.Lock()
	if l.isClosed {
		l.rejected++
		l.mu.Unlock()
		_ = c.Close(context.Background())
		held.release()
		held = nil
		l.report(peer, agentID, agentwire.Errorf(agentwire.CodeCanceled, "after handshake: %w", ErrListenerClosed))
		admitted = true // c closed nc
		return
	}
	l.live[c] = struct{}{}
	l.admitted++
	l.wg.Add(1)
	l.mu.Unlock()
	s := held
	admitted, held = true, nil
	release := s.release
	if s.admit != nil {
		release = nil // the admission's receiver owns the room now
	}
	go l.watch(c, release)
	l.peerResult(peerHost(peer), true)

	l.conn.logger.LogAttrs(context.Background(), slog.LevelDebug, "reverse connection admitted",
		slog.String("agent_id", agentID), slog.String("connection_id", connID), slog.String("peer", addrString(peer)))
	if s.admit != nil {
		s.admit(c)
		return
	}
	l.cfg.admit(agentID, c, reg)
}

// watch forgets an admitted connection when it ends and calls release, if
// set, to free its cap slot.
func (l *ReverseListener) watch(c Conn, release func()) {
	defer l.wg.Done()
	select {
	case <-c.Done():
	case <-l.closed:
		// Close closes the connection itself if asked to; either way the
		// slot no longer matters.
	}
	l.mu.Lock()
	delete(l.live, c)
	l.mu.Unlock()
	if release != nil {
		release()
	}
}

func (l *ReverseListener) release(agentID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perAgent[agentID]--; l.perAgent[agentID] <= 0 {
		delete(l.perAgent, agentID)
	}
}

func (l *ReverseListener) report(peer net.Addr, agentID string, err error) {
	l.conn.logger.LogAttrs(context.Background(), slog.LevelDebug, "reverse connection rejected",
		slog.String("agent_id", agentID), slog.String("peer", addrString(peer)), slog.Any("error", err))
	if f := l.cfg.reject; f != nil {
		f(peer, agentID, err)
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// ioErr classifies an I/O failure during registration.
func (l *ReverseListener) ioErr(ctx context.Context, what string, err error, code agentwire.Code) error {
	switch {
	case l.ctx.Err() != nil:
		return agentwire.Errorf(agentwire.CodeCanceled, "%s: %w", what, ErrListenerClosed)
	case ctx.Err() != nil:
		return agentwire.Errorf(agentwire.CodeDeadlineExceeded, "%s: no registration within %v", what, l.cfg.timeout)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return agentwire.Errorf(agentwire.CodeDeadlineExceeded, "%s: no registration within %v", what, l.cfg.timeout)
	}
	return agentwire.NewError(code, fmt.Errorf("%s: %w", what, err))
}

// readRegistration reads exactly one frame, byte-exact, so that nothing the
// framed connection needs afterwards is consumed. A frame that is readable
// but not a valid registration yields a rejection (answered); a transport
// failure an error (the connection is just closed).
func (l *ReverseListener) readRegistration(ctx context.Context, nc net.Conn) (*agentv2.RegistrationRequest, *rejection, error) {
	var hdr [agentv2.FrameHeaderSize]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		return nil, nil, l.ioErr(ctx, "registration", err, agentwire.CodeUnavailable)
	}
	n := int(binary.BigEndian.Uint32(hdr[:4]))
	t := agentv2.FrameType(hdr[4])
	switch {
	case n == 0:
		return nil, &rejection{code: agentwire.CodeInvalidArgument, reason: "zero-length frame"}, nil
	case n > MaxRegistrationFrame:
		return nil, &rejection{code: agentwire.CodeInvalidArgument,
			reason: fmt.Sprintf("registration frame of %d bytes exceeds %d", n, MaxRegistrationFrame)}, nil
	case t != agentv2.AgentToProxyFrameRegistration:
		return nil, &rejection{code: agentwire.CodeInvalidArgument,
			reason: fmt.Sprintf("first frame must be a registration, got type 0x%02x", uint8(t))}, nil
	}
	payload := make([]byte, n-1)
	if _, err := io.ReadFull(nc, payload); err != nil {
		return nil, nil, l.ioErr(ctx, "registration", err, agentwire.CodeUnavailable)
	}
	var msg agentv2.AgentToProxy
	if err := codec.Decode(&msg, t, payload, agentv2.IsAgentToProxyFrame, false); err != nil {
		return nil, &rejection{code: agentwire.CodeInvalidArgument, reason: "malformed registration", detail: err}, nil
	}
	return msg.GetRegistration(), nil, nil
}

// validate applies the checks in order and, on success, reserves a slot
// under the agent's connection cap.
func (l *ReverseListener) validate(ctx context.Context, reg *agentv2.RegistrationRequest, peer net.Addr) (*slot, *rejection) {
	if v := reg.GetProtocolVersion(); v != ProtocolVersion {
		return nil, &rejection{code: agentwire.CodeFailedPrecondition,
			reason: fmt.Sprintf("protocol version %d not supported (want %d)", v, ProtocolVersion)}
	}
	id := reg.GetAgentId()
	if id == "" {
		return nil, &rejection{code: agentwire.CodeInvalidArgument, reason: "empty agent id"}
	}
	if !validAgentID(id) {
		return nil, &rejection{code: agentwire.CodeInvalidArgument,
			reason: fmt.Sprintf("agent id must be at most %d bytes of printable UTF-8", MaxAgentIDLength)}
	}
	if !l.allowed(id) {
		return nil, &rejection{code: agentwire.CodePermissionDenied, reason: "agent id not allowed"}
	}
	if rej := l.authenticate(ctx, reg, peer); rej != nil {
		return nil, rej
	}
	return l.reserve(reg)
}

func validAgentID(id string) bool {
	if len(id) > MaxAgentIDLength || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func (l *ReverseListener) allowed(id string) bool {
	if len(l.cfg.allow) == 0 {
		return true
	}
	for _, p := range l.cfg.allow {
		if ok, _ := path.Match(p, id); ok {
			return true
		}
	}
	return false
}

// authenticate checks the token. Configured tokens are stored as SHA-256
// digests and every one is compared in constant time, so neither the
// comparison nor the token's length leaks through timing.
func (l *ReverseListener) authenticate(ctx context.Context, reg *agentv2.RegistrationRequest, peer net.Addr) *rejection {
	if l.cfg.noAuth {
		return nil
	}
	token := reg.GetAuthToken()
	if token == "" {
		return &rejection{code: agentwire.CodeUnauthenticated, reason: "auth token required"}
	}
	candidates, own := l.cfg.agentTokens[reg.GetAgentId()]
	if !own {
		candidates = l.cfg.globalTokens
	}
	sum := sha256.Sum256([]byte(token))
	match := 0
	for i := range candidates {
		match |= subtle.ConstantTimeCompare(sum[:], candidates[i][:])
	}
	if match == 1 {
		return nil
	}
	if l.cfg.verifier == nil {
		return &rejection{code: agentwire.CodeUnauthenticated, reason: "invalid auth token"}
	}
	if err := l.cfg.verifier(ctx, reg, peer); err != nil {
		code := agentwire.CodeUnauthenticated
		if c := agentwire.CodeOf(err); c == agentwire.CodePermissionDenied {
			code = c
		}
		return &rejection{code: code, reason: "auth token rejected", detail: err}
	}
	return nil
}

// connectionID returns 128 random bits in hex.
func (l *ReverseListener) connectionID() (string, error) {
	var b [16]byte
	if _, err := l.cfg.randRead(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func (l *ReverseListener) writeResponse(nc net.Conn, resp *agentv2.RegistrationResponse) error {
	msg := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RegistrationResponse{RegistrationResponse: resp}}
	return codec.WriteFrameTo(nc, msg, 0)
}

// Stats returns the listener's counters.
func (l *ReverseListener) Stats() ReverseStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ReverseStats{Pending: l.pending, Live: len(l.live), Admitted: l.admitted, Rejected: l.rejected}
}

// CloseConns closes every connection the listener admitted that is still
// open, waiting for each honouring ctx. The listener keeps serving.
func (l *ReverseListener) CloseConns(ctx context.Context) error {
	l.mu.Lock()
	conns := make([]Conn, 0, len(l.live))
	for c := range l.live {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	var errs []error
	for _, c := range conns {
		if err := c.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops accepting, drops pending registrations, removes socket files
// ListenUnix created and, with [WithCloseConnsOnClose], closes the admitted
// connections. It waits, honouring ctx, for every goroutine the listener
// started and for running Serve calls. Close is idempotent.
func (l *ReverseListener) Close(ctx context.Context) error {
	l.mu.Lock()
	first := !l.isClosed
	var conns []Conn
	if first {
		l.isClosed = true
		close(l.closed)
		l.cancel()
		for ln := range l.listeners {
			_ = ln.Close()
		}
		if l.cfg.closeConns {
			for c := range l.live {
				conns = append(conns, c)
			}
		}
	}
	sockets := l.sockets
	l.sockets = nil
	l.mu.Unlock()

	var errs []error
	for _, c := range conns {
		if err := c.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	waited := make(chan struct{})
	go func() {
		l.serves.Wait()
		l.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		errs = append(errs, agentwire.WrapContextError(ctx.Err()))
		return errors.Join(errs...)
	}
	for _, s := range sockets {
		s.remove()
	}
	return errors.Join(errs...)
}

// ListenUnix listens on a Unix socket at path (see [ListenReverseUnix]) and
// serves it in the background until Close, which also removes the file.
func (l *ReverseListener) ListenUnix(path string) (net.Addr, error) {
	ln, err := ListenReverseUnix(path)
	if err != nil {
		return nil, err
	}
	return l.serveBackground(ln)
}

// ListenTCP listens on addr ("127.0.0.1:0" picks a port) and serves it in
// the background until Close. With a non-nil tlsConfig connections use TLS;
// set its ClientAuth to tls.RequireAndVerifyClientCert (and ClientCAs) to
// require client certificates (mTLS): clients without a valid one are
// refused before they can register.
func (l *ReverseListener) ListenTCP(addr string, tlsConfig *tls.Config) (net.Addr, error) {
	ln, err := ListenReverseTCP(addr, tlsConfig)
	if err != nil {
		return nil, err
	}
	return l.serveBackground(ln)
}

func (l *ReverseListener) serveBackground(ln net.Listener) (net.Addr, error) {
	l.mu.Lock()
	if l.isClosed {
		l.mu.Unlock()
		_ = ln.Close()
		if s, ok := ln.(*unixSocket); ok {
			s.remove()
		}
		return nil, agentwire.NewError(agentwire.CodeUnavailable, ErrListenerClosed)
	}
	if s, ok := ln.(*unixSocket); ok {
		l.sockets = append(l.sockets, s)
	}
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		if err := l.Serve(l.ctx, ln); err != nil {
			l.conn.logger.LogAttrs(context.Background(), slog.LevelError, "reverse listener stopped",
				slog.String("addr", ln.Addr().String()), slog.Any("error", err))
		}
	}()
	return ln.Addr(), nil
}

// ListenReverseTCP listens on addr, with TLS if tlsConfig is non-nil (its
// MinVersion is raised to TLS 1.2 at least; the caller's config is not
// modified).
func ListenReverseTCP(addr string, tlsConfig *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("listen %s: %w", addr, err))
	}
	if tlsConfig == nil {
		return ln, nil
	}
	cfg := tlsConfig.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return tls.NewListener(ln, cfg), nil
}

// ListenReverseUnix creates a Unix socket at path that only the proxy's user
// can connect to (mode 0600, set before the socket appears at path: it is
// bound under a temporary name and renamed into place). A stale socket at
// path is replaced, but only if it is a socket and nobody answers on it; a
// live socket or any other file is an error. Closing the listener removes
// the file, unless something else has replaced it since.
func ListenReverseUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, agentwire.Errorf(agentwire.CodeFailedPrecondition, "listen %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, agentwire.Errorf(agentwire.CodeAlreadyExists, "listen %s: socket in use", path)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("listen %s: %w", path, err))
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	tmp := filepath.Join(filepath.Dir(path), ".aw-"+hex.EncodeToString(suffix[:])+".sock")
	bindPath := tmp
	if len(tmp) >= 104 {
		// The temporary name would be too long for sockaddr_un: bind in place.
		bindPath = path
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bindPath, Net: "unix"})
	if err != nil {
		return nil, agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("listen %s: %w", path, err))
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		_ = ln.Close()
		_ = os.Remove(bindPath)
		return nil, agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("listen %s: %w", path, err))
	}
	if err := os.Chmod(bindPath, 0o600); err != nil {
		return fail(err)
	}
	if bindPath != path {
		if err := os.Rename(bindPath, path); err != nil {
			return fail(err)
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		_ = ln.Close()
		return nil, agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("listen %s: %w", path, err))
	}
	return &unixSocket{UnixListener: ln, path: path, file: fi}, nil
}

// unixSocket is a Unix listener that removes its own socket file on Close.
type unixSocket struct {
	*net.UnixListener
	path string
	file os.FileInfo
	once sync.Once
}

func (s *unixSocket) Addr() net.Addr { return &net.UnixAddr{Name: s.path, Net: "unix"} }

func (s *unixSocket) Close() error {
	err := s.UnixListener.Close()
	s.remove()
	return err
}

// remove deletes the socket file if it is still ours.
func (s *unixSocket) remove() {
	s.once.Do(func() {
		if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.file) {
			_ = os.Remove(s.path)
		}
	})
}

type tlsStateKey struct{}

// PeerTLSState returns the TLS state of the registering connection, for a
// [TokenVerifier] that binds agent ids to client certificates. ok is false
// on plaintext listeners.
func PeerTLSState(ctx context.Context) (state *tls.ConnectionState, ok bool) {
	state, ok = ctx.Value(tlsStateKey{}).(*tls.ConnectionState)
	return state, ok
}
