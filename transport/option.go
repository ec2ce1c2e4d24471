package transport

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Option configures a connection at dial time.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// ProtocolVersion is the protocol version agentwire speaks.
const ProtocolVersion = 2

// DefaultServiceName is the gRPC service agents implement.
const DefaultServiceName = "sentinel.agent.v2.AgentServiceV2"

// Defaults for dial-time options.
const (
	DefaultCallTimeout      = 30 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultLivenessInterval and DefaultLivenessTimeout (see WithLiveness)
	// drop an agent hung with events outstanding 1.25 to 1.375 s after it
	// last sent anything; a live one has a second to answer the ping.
	DefaultLivenessInterval = 250 * time.Millisecond
	DefaultLivenessTimeout  = time.Second
)

// ConfigUpdateFunc answers an agent's request to change its configuration.
type ConfigUpdateFunc func(ctx context.Context, req *agentv2.ConfigUpdateRequest) *agentv2.ConfigUpdateResponse

type config struct {
	proxyID          string
	proxyVersion     string
	configJSON       string
	versions         []uint32
	callTimeout      time.Duration
	asyncWindow      time.Duration
	handshakeTimeout time.Duration
	healthInterval   time.Duration
	livenessInterval time.Duration
	livenessTimeout  time.Duration
	maxFrameSize     int
	maxPending       int
	tlsConfig        *tls.Config
	serviceName      string
	logger           *slog.Logger
	onMetrics        func(*agentv2.MetricsReport)
	onHealth         func(*agentv2.HealthStatus)
	onStatus         func(Status)
	onConfigUpdate   ConfigUpdateFunc
	now              func() time.Time
	streamHeaders    func(ctx context.Context, set func(key, value string))
	// logRate and logBytes limit agent log lines (see WithAgentLogLimit).
	logRate, logBytes int
	unixEncoding      UnixEncoding
}

func newConfig(opts []Option) *config {
	c := &config{
		proxyID:          "agentwire",
		proxyVersion:     "0.1.0",
		versions:         []uint32{ProtocolVersion},
		callTimeout:      DefaultCallTimeout,
		asyncWindow:      DefaultAsyncWindow,
		handshakeTimeout: DefaultHandshakeTimeout,
		livenessInterval: DefaultLivenessInterval,
		livenessTimeout:  DefaultLivenessTimeout,
		serviceName:      DefaultServiceName,
		logger:           slog.Default(),
		now:              time.Now,
		logRate:          DefaultAgentLogRate,
		logBytes:         DefaultAgentLogBytes,
	}
	for _, o := range opts {
		o.apply(c)
	}
	return c
}

// WithProxyID sets the proxy id and version sent in the handshake.
func WithProxyID(id, version string) Option {
	return optionFunc(func(c *config) { c.proxyID, c.proxyVersion = id, version })
}

// WithHandshakeConfig sets the JSON configuration sent with the handshake.
func WithHandshakeConfig(configJSON string) Option {
	return optionFunc(func(c *config) { c.configJSON = configJSON })
}

// WithProtocolVersions overrides the protocol versions offered in the
// handshake (default: 2), to test version negotiation.
func WithProtocolVersions(versions ...uint32) Option {
	return optionFunc(func(c *config) { c.versions = append([]uint32(nil), versions...) })
}

// WithCallTimeout sets the default deadline of a Send whose context has
// none or a later one (default 30 s; <= 0 disables it).
func WithCallTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.callTimeout = d })
}

// WithHandshakeTimeout bounds connecting plus the handshake (default 5 s).
func WithHandshakeTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.handshakeTimeout = d })
}

// WithLiveness sets how the connection finds a hung agent (default 250 ms
// and 1 s): with calls outstanding and nothing at all from the agent for
// interval (to within interval/2), it pings; if nothing arrives within
// timeout either, it fails with Unavailable ([ErrUnresponsive]), and so
// does every call in flight. Any message proves the agent alive. Either
// value <= 0 disables the check.
func WithLiveness(interval, timeout time.Duration) Option {
	return optionFunc(func(c *config) { c.livenessInterval, c.livenessTimeout = interval, timeout })
}

// WithHealthInterval asks the agent to report health at this interval.
func WithHealthInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.healthInterval = d })
}

// WithMaxFrameSize limits a frame or message in either direction (default 16 MiB).
func WithMaxFrameSize(n int) Option {
	return optionFunc(func(c *config) { c.maxFrameSize = n })
}

// WithAsyncWindow sets how long [AsyncConn.Go] holds its events back so
// that those sent meanwhile share one write (default [DefaultAsyncWindow];
// 0 writes each at once). Any other write on the connection (a Send, a
// cancel, a ping) ends the window at once: only events nobody waits for
// wait. It applies to the Unix-socket and reverse transports; gRPC and
// Connect batch their writes already.
func WithAsyncWindow(d time.Duration) Option {
	return optionFunc(func(c *config) { c.asyncWindow = d })
}

// WithMaxPending bounds the bytes queued for a peer that does not read
// (default 4 MiB; on gRPC and Connect, on top of HTTP/2's window). Senders
// wait, honouring their context.
func WithMaxPending(n int) Option {
	return optionFunc(func(c *config) { c.maxPending = n })
}

// WithTLSConfig enables TLS (and mTLS when the config carries client
// certificates) on gRPC and TCP transports.
func WithTLSConfig(cfg *tls.Config) Option {
	return optionFunc(func(c *config) { c.tlsConfig = cfg })
}

// WithServiceName sets the gRPC service name, for example
// "zentinel.agent.v2.AgentServiceV2" to talk to Zentinel agents.
func WithServiceName(name string) Option {
	return optionFunc(func(c *config) { c.serviceName = name })
}

// WithLogger sets where connection events and agent log messages go.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithMetricsHandler receives the agent's metrics reports, on the reader
// goroutine: keep it short.
func WithMetricsHandler(f func(*agentv2.MetricsReport)) Option {
	return optionFunc(func(c *config) { c.onMetrics = f })
}

// WithHealthHandler receives each health report, on the reader goroutine:
// keep it short.
func WithHealthHandler(f func(*agentv2.HealthStatus)) Option {
	return optionFunc(func(c *config) { c.onHealth = f })
}

// WithStatusHandler is the connection's one status listener: it is told
// the [Status] before the dial returns, then at every health report and
// change of State, the last being StateClosed. Calls come one at a time,
// in order, without locks held: keep it short and do not call the Conn's
// blocking methods from it.
func WithStatusHandler(f func(Status)) Option {
	return optionFunc(func(c *config) { c.onStatus = f })
}

// WithConfigUpdateHandler answers agents' config-update requests, which
// are rejected without it.
func WithConfigUpdateHandler(f ConfigUpdateFunc) Option {
	return optionFunc(func(c *config) { c.onConfigUpdate = f })
}

// WithClock injects the clock used for timestamps (tests).
func WithClock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.now = now })
}

// WithStreamHeaders adds request headers (gRPC metadata, a W3C
// traceparent for example) to the stream of the gRPC and Connect
// transports: f runs once per dial and calls set for each. Framed
// transports ignore it.
func WithStreamHeaders(f func(ctx context.Context, set func(key, value string))) Option {
	return optionFunc(func(c *config) { c.streamHeaders = f })
}
