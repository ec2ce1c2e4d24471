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
	// DefaultInlineBudget is how long a handler may run on the goroutine
	// that reads its connection before another goroutine takes the reading
	// over.
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
	if c.maxConcurrency <= 0 {
		errs = append(errs, errors.New("max concurrency must be positive"))
	}
	if c.maxQueue < 0 {
		errs = append(errs, errors.New("max queue must not be negative"))
	} else if c.maxQueue == 0 {
		c.maxQueue = c.maxConcurrency
	}
	if c.maxQueuedPerRequest < 0 {
		errs = append(errs, errors.New("max queued per request must not be negative"))
	}
	if c.healthInterval <= 0 {
		errs = append(errs, errors.New("health interval must be positive"))
	}
	if c.handshakeTimeout <= 0 {
		errs = append(errs, errors.New("handshake timeout must be positive"))
	}
	if c.inlineBudget < 0 {
		errs = append(errs, errors.New("inline budget must not be negative"))
	}
	if c.maxFrameSize <= 0 {
		errs = append(errs, errors.New("max frame size must be positive"))
	}
	if c.serviceName == "" {
		errs = append(errs, errors.New("service name must not be empty"))
	}
	if c.logger == nil || c.now == nil {
		errs = append(errs, errors.New("logger and clock must not be nil"))
	}
	if len(errs) > 0 {
		return c, agentwire.NewError(agentwire.CodeInvalidArgument, errors.Join(errs...))
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
// handshake (all by default). The proxy should send no others; if it does,
// the handler is still called.
func WithSupportedEvents(events ...agentv2.EventType) Option {
	return optionFunc(func(c *config) { c.events = append([]agentv2.EventType(nil), events...) })
}

// WithMaxConcurrency sets how many events of one connection are handled at
// once ([DefaultMaxConcurrency]). When that many events are pending the
// agent sends flow_control PAUSE, and RESUME once they fall to three
// quarters of it.
func WithMaxConcurrency(n int) Option { return optionFunc(func(c *config) { c.maxConcurrency = n }) }

// WithMaxQueue sets how many events beyond the concurrency limit one
// connection queues when the proxy ignores a pause (default: the
// concurrency limit). Events past that are answered with a
// RESOURCE_EXHAUSTED error without calling the handler.
func WithMaxQueue(n int) Option { return optionFunc(func(c *config) { c.maxQueue = n }) }

// WithMaxQueuedPerRequest sets how many events of one correlation id may
// wait behind the one being handled before the agent sends a flow_control
// PAUSE for that request ([DefaultMaxQueuedPerRequest]); RESUME follows
// when half of them are done. 0 disables per-request pauses. Events are
// never refused for this: only the connection-wide queue bound refuses.
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
// reads its connection ([DefaultInlineBudget]). Events are handled where
// they are read while handlers are quick, which saves a goroutine hand-off
// per event; a handler still running after d gets the reading taken over by
// another goroutine, and a connection whose handlers are slow (longer than d)
// hands its next events to worker goroutines for a while. The watch behind
// this looks every d for a second after a slow handler, and every 10 d while
// all have been quick (its wake-ups cost CPU): a first handler to block on a
// server of quick ones holds its connection for up to 20 d.
// 0 always uses workers.
func WithInlineBudget(d time.Duration) Option {
	return optionFunc(func(c *config) { c.inlineBudget = d })
}

// WithBorrowedEvents makes events on Unix-socket and reverse connections
// borrow the connection's read buffer instead of owning their memory: an
// event, and every string and byte slice in it, is valid only until the
// handler method returns. A handler that keeps anything (a header value, a
// body chunk, the event) past its return must copy it first
// (strings.Clone, bytes.Clone, proto.Clone). In exchange the agent allocates
// nothing per event to hold what it reads, which makes the garbage
// collector run several times less often. Events that wait for a worker,
// and the correlation ids the SDK keeps, are copied by the SDK; gRPC and
// Connect connections are not affected.
func WithBorrowedEvents() Option { return optionFunc(func(c *config) { c.borrowEvents = true }) }

// WithMaxFrameSize sets the largest message accepted or sent, in bytes
// (codec.DefaultMaxFrameSize, 16 MiB). It applies to frames on framed
// transports and to messages on gRPC.
func WithMaxFrameSize(n int) Option { return optionFunc(func(c *config) { c.maxFrameSize = n }) }

// WithLogger sets where the server logs (slog.Default() by default).
func WithLogger(l *slog.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// WithClock sets the clock used for timestamps in messages (time.Now by
// default), for tests.
func WithClock(now func() time.Time) Option { return optionFunc(func(c *config) { c.now = now }) }

// WithServiceName sets the fully-qualified gRPC service name served by
// [Server.RegisterGRPC], [Server.ConnectHandler] and [Server.HTTPHandler]
// ("sentinel.agent.v2.AgentServiceV2" by default), for example
// "zentinel.agent.v2.AgentServiceV2" to serve Zentinel proxies. The
// messages are the same whatever the name.
func WithServiceName(name string) Option { return optionFunc(func(c *config) { c.serviceName = name }) }

// WithAllowedUIDs restricts connections accepted by [Server.ServeUnix] to
// peers running as one of uids, checked with SO_PEERCRED. Others are closed
// before the handshake. Where the platform cannot tell a peer's uid, every
// connection is refused. By default any peer that can open the socket file
// is served.
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
