package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentwire/agentwire"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// CacheOption shapes a cache directive (see [CacheFor]).
type CacheOption interface{ applyCache(*agentv2.CacheDirective) }

type cacheOption func(*agentv2.CacheDirective)

func (f cacheOption) applyCache(d *agentv2.CacheDirective) { f(d) }

func scope(d *agentv2.CacheDirective) *agentv2.CacheScope {
	if d.Scope == nil {
		d.Scope = &agentv2.CacheScope{}
	}
	return d.Scope
}

// CacheFor marks resp, a request_headers decision, as reusable for ttl by
// the proxy for requests that agree on the attributes the options name
// (ByMethod, ByPath, ByQuery, ByHeader, ByClientIP, ByRoute): name every
// attribute the decision depended on. With no By option, the decision
// holds for every request the agent sees. It returns resp, which it
// changes: call it on a response of your own, not on one shared between
// events.
func CacheFor(resp *agentv2.AgentResponse, ttl time.Duration, opts ...CacheOption) *agentv2.AgentResponse {
	d := &agentv2.CacheDirective{TtlMs: uint64(max(ttl, 0).Milliseconds())}
	for _, o := range opts {
		o.applyCache(d)
	}
	resp.Cache = d
	return resp
}

// ByMethod keys the cached decision by the request method.
func ByMethod() CacheOption {
	return cacheOption(func(d *agentv2.CacheDirective) { scope(d).Method = true })
}

// ByPath keys the cached decision by the URI's path.
func ByPath() CacheOption {
	return cacheOption(func(d *agentv2.CacheDirective) { scope(d).Path = true })
}

// ByQuery keys the cached decision by the URI's query string.
func ByQuery() CacheOption {
	return cacheOption(func(d *agentv2.CacheDirective) { scope(d).Query = true })
}

// ByHeader keys the cached decision by these request headers' values.
func ByHeader(names ...string) CacheOption {
	return cacheOption(func(d *agentv2.CacheDirective) { scope(d).Headers = append(scope(d).Headers, names...) })
}

// ByClientIP keys the cached decision by the client's address.
func ByClientIP() CacheOption {
	return cacheOption(func(d *agentv2.CacheDirective) { scope(d).ClientIp = true })
}

// ByRoute keys the cached decision by the proxy's route id.
func ByRoute() CacheOption {
	return cacheOption(func(d *agentv2.CacheDirective) { scope(d).Route = true })
}

// StaleFor lets the proxy serve the decision for stale past its ttl while the
// agent is unavailable.
func StaleFor(stale time.Duration) CacheOption {
	return cacheOption(func(dir *agentv2.CacheDirective) { dir.StaleMs = uint64(max(stale, 0).Milliseconds()) })
}

// CacheTags names the cached decision for a later purge ([PurgeCache]).
func CacheTags(tags ...string) CacheOption {
	return cacheOption(func(d *agentv2.CacheDirective) { d.Tags = append(d.Tags, tags...) })
}

// BodyNotInspected says the agent decides the same whatever the request's
// body: a cached allow then also answers the request's body events.
func BodyNotInspected() CacheOption {
	return cacheOption(func(d *agentv2.CacheDirective) { d.BodyNotInspected = true })
}

// PurgeCache asks every connected proxy to drop the decisions of this
// agent it cached: those tagged with any of tags ([CacheTags]), or all of
// them without tags. It sends one config_update (a CachePurge) per proxy
// (by proxy id) and waits for the answers; a proxy that refuses or fails
// is reported in the error. It fails with CodeUnavailable when no proxy is
// connected.
func (srv *Server) PurgeCache(ctx context.Context, tags ...string) error {
	srv.mu.Lock()
	sessions := slices.Clone(srv.sessions)
	srv.mu.Unlock()
	seen := make(map[string]bool, len(sessions))
	var errs []error
	for _, s := range sessions {
		id := s.hs.GetProxyId()
		if seen[id] {
			continue
		}
		seen[id] = true
		req := &agentv2.ConfigUpdateRequest{
			TimestampMs: srv.nowMs(),
			UpdateType:  &agentv2.ConfigUpdateRequest_CachePurge{CachePurge: &agentv2.CachePurge{Tags: tags}},
		}
		resp, err := s.requestConfigUpdate(ctx, req)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("proxy %q: %w", id, err))
		case !resp.GetAccepted():
			errs = append(errs, fmt.Errorf("proxy %q refused the purge: %s", id, resp.GetError()))
		}
	}
	if len(seen) == 0 {
		return agentwire.Errorf(agentwire.CodeUnavailable, "agent: no proxy connected")
	}
	return errors.Join(errs...)
}
