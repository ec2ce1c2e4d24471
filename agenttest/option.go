package agenttest

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"time"

	"github.com/agentwire/agentwire/codec"
	"github.com/agentwire/agentwire/transport"
)

// Defaults of [Run].
const (
	// DefaultCheckTimeout bounds each check.
	DefaultCheckTimeout = 10 * time.Second
	// DefaultBlockPath is the path the suite expects the agent to block.
	DefaultBlockPath = "/admin"
	// DefaultAllowPath is the path the suite expects the agent to allow.
	DefaultAllowPath = "/"
	// DefaultLoadEvents and DefaultLoadRequests shape the concurrency check:
	// that many events spread over that many correlation ids.
	DefaultLoadEvents   = 500
	DefaultLoadRequests = 50
	// DefaultHealthInterval is the health-report interval the suite asks for.
	DefaultHealthInterval = 500 * time.Millisecond
)

// Option configures [Run].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	checkTimeout   time.Duration
	blockPath      string
	blockStatus    uint32
	allowPath      string
	mutationHeader string
	loadEvents     int
	loadRequests   int
	healthInterval time.Duration
	maxFrameSize   int
	only           map[string]bool
	transportOpts  []transport.Option
	logger         *slog.Logger
	onResult       func(Result)
	now            func() time.Time
	newID          func() string
}

func newConfig(opts []Option) *config {
	c := &config{
		checkTimeout:   DefaultCheckTimeout,
		blockPath:      DefaultBlockPath,
		allowPath:      DefaultAllowPath,
		loadEvents:     DefaultLoadEvents,
		loadRequests:   DefaultLoadRequests,
		healthInterval: DefaultHealthInterval,
		maxFrameSize:   codec.DefaultMaxFrameSize,
		logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		now:            time.Now,
		newID:          randomID,
	}
	for _, o := range opts {
		o.apply(c)
	}
	return c
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// WithCheckTimeout bounds each check (default 10 s). The context given to
// [Run] bounds the whole suite.
func WithCheckTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.checkTimeout = d })
}

// WithBlockPath sets the request path the agent is documented to block
// (default "/admin").
func WithBlockPath(path string) Option {
	return optionFunc(func(c *config) { c.blockPath = path })
}

// WithBlockStatus requires blocks to use exactly this HTTP status; by
// default any status from 400 to 599 passes.
func WithBlockStatus(status uint32) Option {
	return optionFunc(func(c *config) { c.blockStatus = status })
}

// WithAllowPath sets the request path the agent is documented to allow
// (default "/").
func WithAllowPath(path string) Option {
	return optionFunc(func(c *config) { c.allowPath = path })
}

// WithMutationHeader requires the agent to set or add header name (request
// or response side) when it allows a request. Without it the mutation check
// only reports what it saw and counts as skipped.
func WithMutationHeader(name string) Option {
	return optionFunc(func(c *config) { c.mutationHeader = name })
}

// WithLoad sets how many events the concurrency check keeps in flight and
// over how many correlation ids (default 500 over 50).
func WithLoad(events, requests int) Option {
	return optionFunc(func(c *config) { c.loadEvents, c.loadRequests = events, requests })
}

// WithHealthInterval sets the health-report interval the suite asks the
// agent for (default 500 ms).
func WithHealthInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.healthInterval = d })
}

// WithMaxFrameSize tells the suite the agent's frame size limit (default
// 16 MiB); the oversize check announces a frame one byte larger.
func WithMaxFrameSize(n int) Option {
	return optionFunc(func(c *config) { c.maxFrameSize = n })
}

// WithChecks runs only the named checks (see [CheckNames]); the others are
// left out of the results.
func WithChecks(names ...string) Option {
	return optionFunc(func(c *config) {
		c.only = make(map[string]bool, len(names))
		for _, n := range names {
			c.only[n] = true
		}
	})
}

// WithTransportOptions passes options to every connection the suite opens,
// for example transport.WithServiceName or transport.WithTLSConfig.
func WithTransportOptions(opts ...transport.Option) Option {
	return optionFunc(func(c *config) { c.transportOpts = append(c.transportOpts, opts...) })
}

// WithLogger sets where the suite's connections log (discarded by default).
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithClock injects the clock used for event timestamps (tests).
func WithClock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.now = now })
}

// WithIDSource injects the generator of the run's correlation-id prefix
// (tests).
func WithIDSource(newID func() string) Option {
	return optionFunc(func(c *config) { c.newID = newID })
}

// WithResultHandler calls fn with each result as soon as its check ends, on
// the goroutine of [Run], so that a command can print results as they come.
func WithResultHandler(fn func(Result)) Option {
	return optionFunc(func(c *config) { c.onResult = fn })
}
