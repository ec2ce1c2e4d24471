package agent

import (
	"crypto/tls"
	"maps"
	"net"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// A ReverseDialOption configures a [ReverseDialer].
type ReverseDialOption interface{ applyReverseDial(*reverseDialConfig) }

type reverseDialOptionFunc func(*reverseDialConfig)

func (f reverseDialOptionFunc) applyReverseDial(c *reverseDialConfig) { f(c) }

type reverseDialConfig struct {
	token        string
	metadata     map[string]string
	conns        int
	minBackoff   time.Duration
	maxBackoff   time.Duration
	timeout      time.Duration
	tlsConfig    *tls.Config
	rand         func() uint64
	onRegistered func(*agentv2.RegistrationResponse)
	onError      func(err error, retryIn time.Duration)
	stableAfter  time.Duration
	dialer       net.Dialer
	zentinel     bool
}

// WithAgentToken sets the token sent with every registration. Over TCP,
// use [WithTLSConfig]: without TLS the token crosses the network in
// the clear.
func WithAgentToken(token string) ReverseDialOption {
	return reverseDialOptionFunc(func(c *reverseDialConfig) { c.token = token })
}

// WithRegistrationMetadata sets metadata sent with every registration
// (for example region or version); the map is copied.
func WithRegistrationMetadata(md map[string]string) ReverseDialOption {
	return reverseDialOptionFunc(func(c *reverseDialConfig) { c.metadata = maps.Clone(md) })
}

// WithConnections sets how many connections the dialer keeps open to the
// proxy (1 by default); each reconnects on its own.
func WithConnections(n int) ReverseDialOption {
	return reverseDialOptionFunc(func(c *reverseDialConfig) { c.conns = n })
}

// WithReconnectBackoff sets the exponential backoff between attempts: the
// n-th consecutive failure waits between half and all of min·2ⁿ, capped at
// max ([DefaultReconnectMin], [DefaultReconnectMax]).
func WithReconnectBackoff(min, max time.Duration) ReverseDialOption {
	return reverseDialOptionFunc(func(c *reverseDialConfig) { c.minBackoff, c.maxBackoff = min, max })
}

// WithRegistrationTimeout bounds dialling, the TLS handshake and the
// registration exchange ([DefaultRegistrationTimeout]).
func WithRegistrationTimeout(d time.Duration) ReverseDialOption {
	return reverseDialOptionFunc(func(c *reverseDialConfig) { c.timeout = d })
}

// WithTLSConfig connects with TLS; give it a client certificate when
// the proxy requires mTLS. An empty ServerName is set from the address.
func WithTLSConfig(cfg *tls.Config) ReverseDialOption {
	return reverseDialOptionFunc(func(c *reverseDialConfig) { c.tlsConfig = cfg })
}

// WithRand sets the random source of the backoff jitter
// (math/rand/v2's by default), for tests.
func WithRand(f func() uint64) ReverseDialOption {
	return reverseDialOptionFunc(func(c *reverseDialConfig) { c.rand = f })
}

// WithRegistrationHandler is called with the proxy's answer each time a
// connection is registered, before it is served (connection id, proxy id
// and version, configuration JSON if any). It must not block.
func WithRegistrationHandler(f func(resp *agentv2.RegistrationResponse)) ReverseDialOption {
	return reverseDialOptionFunc(func(c *reverseDialConfig) { c.onRegistered = f })
}

// WithDialErrorHandler is told about every failed attempt (dial, TLS,
// registration refused, connection lost) and how long the dialer waits
// before the next. It must not block.
func WithDialErrorHandler(f func(err error, retryIn time.Duration)) ReverseDialOption {
	return reverseDialOptionFunc(func(c *reverseDialConfig) { c.onError = f })
}

// WithZentinelRegistration registers the way the reference proxy
// (Sentinel/Zentinel reverse.rs) expects: a JSON registration, after which
// the proxy sends JSON events with no handshake. Use it for reference
// proxies only; agentwire proxies expect the default registration.
func WithZentinelRegistration() ReverseDialOption {
	return reverseDialOptionFunc(func(c *reverseDialConfig) { c.zentinel = true })
}
