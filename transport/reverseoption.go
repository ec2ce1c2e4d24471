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
	// registration (or the handshake after it) at once; more are closed
	// as soon as they are accepted.
	DefaultMaxPendingRegistrations = 128
	// MaxRegistrationFrame is the largest registration frame accepted, so
	// an unauthenticated client cannot make the proxy buffer more.
	MaxRegistrationFrame = 64 << 10
	// MaxAgentIDLength bounds an agent id, in bytes.
	MaxAgentIDLength = 256
)

// ErrListenerClosed: Serve or a Listen method was called on a closed
// [ReverseListener] (CodeUnavailable).
var ErrListenerClosed = errors.New("transport: reverse listener closed")

// AdmitFunc receives a connection that passed registration and the
// handshake, and owns it from then on. It runs on the registration's
// goroutine, which Close waits for: hand c over and return. With
// [WithCloseConnsOnClose] and the listener closing, c may be closed already.
type AdmitFunc func(agentID string, c Conn, reg *agentv2.RegistrationRequest)

// RejectFunc is told about every connection that was not admitted. err is
// an *agentwire.Error: InvalidArgument (malformed registration or agent
// id), FailedPrecondition (protocol version), PermissionDenied (not
// allowlisted), Unauthenticated (token, verifier, TLS), ResourceExhausted
// (connection cap, too many pending), DeadlineExceeded (too slow),
// Unavailable or Canceled (the peer left, the listener closed), or the
// handshake's error. agentID is empty if unknown. It must not block.
type RejectFunc func(peer net.Addr, agentID string, err error)

// TokenVerifier authenticates a registration no configured token matched.
// A nil error admits the agent (subject to the cap); an error rejects it as
// Unauthenticated, or PermissionDenied if its code says so, and is reported
// to the [RejectFunc] but not sent to the agent. ctx ends at the
// registration deadline; on TLS listeners [PeerTLSState] gives the peer's
// verified certificates.
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
	peerFailures  int
	peerCooldown  time.Duration
	now           func() time.Time
}

// WithConnOptions sets the options of admitted connections; their proxy id
// and version also go into the registration answer.
func WithConnOptions(opts ...Option) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.connOpts = append(c.connOpts, opts...) })
}

// WithConnOptionsFunc adds options chosen per admitted agent, after those
// of [WithConnOptions]: a pool passes its per-agent handlers here (see
// pool.Pool.ConnOptions), so adopted connections report like dialled ones.
func WithConnOptionsFunc(f func(agentID string, reg *agentv2.RegistrationRequest) []Option) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.connOptsFor = f })
}

// WithRegistrationTimeout bounds the TLS handshake, reading the
// registration and answering it ([DefaultRegistrationTimeout]); slow
// clients are dropped. The protocol handshake has its own timeout
// ([WithHandshakeTimeout] via [WithConnOptions]).
func WithRegistrationTimeout(d time.Duration) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.timeout = d })
}

// WithAllowedAgents admits only agent ids matching one of patterns, as
// [path.Match] matches ("waf-*" matches "waf-1" but not "waf/1"). Without
// it any id is allowed (still subject to authentication). Invalid patterns
// fail [NewReverseListener].
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

// WithGlobalToken accepts token from any agent id without a token of its own.
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

// WithoutAuth admits agents without a token, where something else
// authenticates them (verified client certificates, a socket only trusted
// users can open). Without auth configured, [NewReverseListener] fails.
func WithoutAuth() ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.noAuth = true })
}

// WithMaxConnsPerAgent caps the live connections of one agent id
// ([DefaultMaxConnsPerAgent]), from acceptance until Done closes; more
// are rejected with ResourceExhausted. Not with [WithAdmission].
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

// WithCloseConnsOnClose makes Close also close the admitted connections,
// which otherwise belong to whoever the admit handler gave them to.
func WithCloseConnsOnClose() ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.closeConns = true })
}

// WithRegistrationConfig sets the configuration JSON sent to an accepted
// agent in its registration answer (none for an empty string).
func WithRegistrationConfig(f func(reg *agentv2.RegistrationRequest) string) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.configFor = f })
}
