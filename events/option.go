package events

import "time"

// Option configures a builder.
type Option interface{ apply(*config) }

type config struct {
	now       func() time.Time
	requestID string
	routeID   string
	upstream  string
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

func newConfig(opts []Option) config {
	c := config{now: time.Now}
	for _, o := range opts {
		o.apply(&c)
	}
	return c
}

// WithClock sets where builders read the time for timestamp_ms (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.now = now })
}

// WithRequestID sets RequestMetadata.request_id (default: the request's
// X-Request-Id header, else the correlation id).
func WithRequestID(id string) Option {
	return optionFunc(func(c *config) { c.requestID = id })
}

// WithRoute sets RequestMetadata.route_id and upstream_id; empty values
// stay absent.
func WithRoute(routeID, upstreamID string) Option {
	return optionFunc(func(c *config) { c.routeID, c.upstream = routeID, upstreamID })
}
