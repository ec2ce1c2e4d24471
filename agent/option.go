package agent

import (
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/gen/sentinel/agent/v2/agentv2connect"
)

// Defaults of a [Server].
const (
	// DefaultMaxConcurrency is how many events one connection handles at once.
	DefaultMaxConcurrency = 256
	// DefaultMaxQueuedPerRequest is how many queued events of one request
	// make the agent pause that request.
	DefaultMaxQueuedPerRequest = 32
	// DefaultHealthInterval is the health report interval when the proxy
	// asks for none.
	DefaultHealthInterval = 10 * time.Second
	// DefaultHandshakeTimeout is how long a new connection may take to send
	// its handshake.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultInlineBudget is how long a handler may run on its connection's
	// reader before another goroutine takes the reading over.
	DefaultInlineBudget = time.Millisecond
	// DefaultSocketMode is the permission of a socket file ListenUnix creates.
	DefaultSocketMode os.FileMode = 0o600
)

// ProtocolVersion is the protocol version the agent speaks.
const ProtocolVersion = 2

// An Option configures a [Server].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	agentID, name, version string
	events                 []agentv2.EventType
	maxConcurrency         int
	maxQueue               int
	maxQueuedPerRequest    int
	healthInterval         time.Duration
	handshakeTimeout       time.Duration
	inlineBudget           time.Duration
	borrowEvents           bool
	maxFrameSize           int
	logger                 *slog.Logger
	now                    func() time.Time
	serviceName            string
	allowedUIDs            []uint32
	interceptors           []Interceptor
	// answeredHook, for tests, runs between an answer sent and its
	// accounting.
	answeredHook func()
}

func newConfig(opts []Option) (config, error) {
	c := config{
		agentID:             "agent",
		events:              allEvents(),
		maxConcurrency:      DefaultMaxConcurrency,
		maxQueuedPerRequest: DefaultMaxQueuedPerRequest,
		healthInterval:      DefaultHealthInterval,
		handshakeTimeout:    DefaultHandshakeTimeout,
		inlineBudget:        DefaultInlineBudget,
		maxFrameSize:        codec.DefaultMaxFrameSize,
		logger:              slog.Default(),
		now:                 time.Now,
		serviceName:         agentv2connect.AgentServiceV2Name,
	}
	for _, o := range opts {
		o.apply(&c)
	}
	var errs []error
	for _, check := range []struct {
		bad  bool
		what string
	}{
		{c.maxConcurrency <= 0, "max concurrency must be positive"},
		{c.maxQueue < 0, "max queue must not be negative"},
		{c.maxQueuedPerRequest < 0, "max queued per request must not be negative"},
		{c.healthInterval <= 0, "health interval must be positive"},
		{c.handshakeTimeout <= 0, "handshake timeout must be positive"},
		{c.inlineBudget < 0, "inline budget must not be negative"},
		{c.maxFrameSize <= 0, "max frame size must be positive"},
		{c.serviceName == "", "service name must not be empty"},
		{c.logger == nil || c.now == nil, "logger and clock must not be nil"},
	} {
		if check.bad {
			errs = append(errs, errors.New(check.what))
		}
	}
	if len(errs) > 0 {
		return c, agentwire.NewError(agentwire.CodeInvalidArgument, errors.Join(errs...))
	}
	if c.maxQueue == 0 {
		c.maxQueue = c.maxConcurrency
	}
	return c, nil
}

// allEvents is every event type of the schema, in ascending order.
func allEvents() []agentv2.EventType {
	events := make([]agentv2.EventType, len(agentv2.ProxyToAgentEvents))
	for i, e := range agentv2.ProxyToAgentEvents {
		events[i] = e.Type
	}
	return events
}

// WithAgentID sets the agent id reported in the handshake and health
// reports ("agent" by default).
func WithAgentID(id string) Option { return optionFunc(func(c *config) { c.agentID = id }) }

// WithName sets the agent's human-readable name reported in the handshake.
func WithName(name string) Option { return optionFunc(func(c *config) { c.name = name }) }

// WithVersion sets the agent's version reported in the handshake.
func WithVersion(version string) Option { return optionFunc(func(c *config) { c.version = version }) }

// WithSupportedEvents sets the event types the agent declares in the
// handshake (all by default); the handler is called for others too.
func WithSupportedEvents(events ...agentv2.EventType) Option {
	return optionFunc(func(c *config) { c.events = append([]agentv2.EventType(nil), events...) })
}

// WithMaxConcurrency sets how many events of one connection are handled at
// once ([DefaultMaxConcurrency]); that many pending pause the connection.
func WithMaxConcurrency(n int) Option { return optionFunc(func(c *config) { c.maxConcurrency = n }) }

// WithMaxQueue sets how many events beyond the concurrency limit one
// connection queues when the proxy ignores a pause (default: the
// concurrency limit); later ones are answered RESOURCE_EXHAUSTED.
func WithMaxQueue(n int) Option { return optionFunc(func(c *config) { c.maxQueue = n }) }

// WithMaxQueuedPerRequest sets how many events of one correlation id may
// wait before the agent pauses that request ([DefaultMaxQueuedPerRequest];
// 0: never). It never refuses events.
func WithMaxQueuedPerRequest(n int) Option {
	return optionFunc(func(c *config) { c.maxQueuedPerRequest = n })
}

// WithHealthInterval sets the health and metrics report interval used when
// the proxy's handshake asks for none ([DefaultHealthInterval]).
func WithHealthInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.healthInterval = d })
}

// WithHandshakeTimeout bounds how long a connection may take to send its
// handshake before it is closed ([DefaultHandshakeTimeout]).
func WithHandshakeTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.handshakeTimeout = d })
}

// WithInlineBudget sets how long a handler may run on the goroutine that
// reads its connection ([DefaultInlineBudget]; 0: always on workers). A
// handler still running after d has the reading taken over, and its
// connection's next events go to workers for a while. The watch looks
// every 10 d while handlers are quick, so the first to block holds its
// connection for up to 20 d.
func WithInlineBudget(d time.Duration) Option {
	return optionFunc(func(c *config) { c.inlineBudget = d })
}

// WithBorrowedEvents makes events on Unix-socket and reverse connections
// borrow the connection's read buffer: an event and every string and byte
// slice in it are valid only until the handler returns, so a handler must
// copy what it keeps. The agent then allocates nothing per event for what
// it reads. gRPC and Connect connections are not affected.
func WithBorrowedEvents() Option { return optionFunc(func(c *config) { c.borrowEvents = true }) }

// WithMaxFrameSize sets the largest message accepted or sent, in bytes
// (codec.DefaultMaxFrameSize, 16 MiB), framed or over gRPC.
func WithMaxFrameSize(n int) Option { return optionFunc(func(c *config) { c.maxFrameSize = n }) }

// WithLogger sets where the server logs (slog.Default() by default).
func WithLogger(l *slog.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// WithClock sets the clock used for timestamps in messages (time.Now by
// default), for tests.
func WithClock(now func() time.Time) Option { return optionFunc(func(c *config) { c.now = now }) }

// WithServiceName sets the fully-qualified gRPC service name served by
// [Server.RegisterGRPC], [Server.ConnectHandler] and [Server.HTTPHandler]
// ("sentinel.agent.v2.AgentServiceV2" by default), for example
// "zentinel.agent.v2.AgentServiceV2"; the messages are the same.
func WithServiceName(name string) Option { return optionFunc(func(c *config) { c.serviceName = name }) }

// WithAllowedUIDs restricts connections accepted by [Server.ServeUnix] to
// peers running as one of uids (SO_PEERCRED); where the platform cannot
// tell, every connection is refused. By default any peer is served.
func WithAllowedUIDs(uids ...uint32) Option {
	return optionFunc(func(c *config) { c.allowedUIDs = append([]uint32(nil), uids...) })
}

// A UnixOption configures [Server.ListenUnix].
type UnixOption interface {
	applyUnix(*unixConfig)
}

type unixConfig struct {
	mode os.FileMode
}

type unixOptionFunc func(*unixConfig)

func (f unixOptionFunc) applyUnix(c *unixConfig) { f(c) }

// WithSocketMode sets the permission bits of the socket file
// ([DefaultSocketMode], 0600: only the agent's user may connect).
func WithSocketMode(mode os.FileMode) UnixOption {
	return unixOptionFunc(func(c *unixConfig) { c.mode = mode.Perm() })
}
