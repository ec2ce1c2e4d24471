package transport

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

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
