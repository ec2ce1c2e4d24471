package cache

import (
	"context"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Entry is one cached decision.
type Entry struct {
	// Response is the agent's answer, without its directive. Nobody
	// writes to it once stored: hits return copies.
	Response *agentv2.AgentResponse
	// Tags and BodyNotInspected are the directive's.
	Tags             []string
	BodyNotInspected bool
	// Expires ends the fresh period; StaleUntil the stale one (equal to
	// Expires without a stale window).
	Expires, StaleUntil time.Time
}

// Key names a decision in a shared [Store]: the SHA-256 of the agent id
// and the values of the decision's scope, length-prefixed, so that no two
// requests that differ in scope collide (a decision must never reach a
// request it was not made for).
type Key [32]byte

// Store is a shared cache of decisions (Redis, say) that the interceptor
// consults behind its in-process layer, so that a fleet of proxies shares
// decisions. Implementations are safe for concurrent use; an error is a
// failed lookup or write, which the interceptor counts and treats as a
// miss (a cache outage never fails a request).
type Store interface {
	// Get returns the entry stored under key for agentID, nil if none.
	Get(ctx context.Context, agentID string, key Key) (*Entry, error)
	// Set stores e under key for agentID until e.StaleUntil.
	Set(ctx context.Context, agentID string, key Key, e *Entry) error
	// Purge drops agentID's entries carrying any of tags, or all of
	// agentID's entries when tags is empty.
	Purge(ctx context.Context, agentID string, tags []string) error
	// AddScope records a scope agentID's decisions use, and Scopes returns
	// them, newest first, so that a proxy can look up decisions another
	// proxy stored.
	AddScope(ctx context.Context, agentID string, s *agentv2.CacheScope) error
	Scopes(ctx context.Context, agentID string) ([]*agentv2.CacheScope, error)
}
