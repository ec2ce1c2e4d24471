// Package cache answers request_headers events from a cache of agents'
// earlier decisions, when the agents said they may be reused.
//
// Only the agent knows what its decision depended on, so the agent
// declares it: a CacheDirective on its response (agent.CacheFor on the Go
// agent side; docs/protocol.md §17 for other languages) gives a TTL, the
// request attributes the decision depended on (method, path, query, named
// headers, client IP, route), an optional stale window and tags. The
// proxy's [Interceptor], on a pool's request pipeline, keys the decision
// by the agent's id and exactly those attributes, and answers later
// requests that agree on them without a round trip:
//
//	ic, err := cache.NewInterceptor()
//	p, err := pool.New(pool.WithInterceptors(ic))
//
// Rules:
//   - Only request_headers decisions are cached, allow and block alike,
//     with their header mutations and audit metadata replayed exactly
//     (the correlation id is the new request's).
//   - A request served from the cache is unknown to the agent: its later
//     events (bodies, response, completion) are answered allow by the
//     interceptor and never sent. A request with a body is served from the
//     cache only if the directive says the body was not inspected.
//   - Concurrent misses for identical requests make one agent call; the
//     others share its answer only if it was cacheable, and otherwise ask
//     the agent themselves (a rate limiter sees every request it would
//     have seen).
//   - When the agent is unavailable (no ready connection, breaker open,
//     timeout), an expired decision within its stale window is served and
//     counted; otherwise the error stands.
//   - An agent purges its decisions by tag, or all of them, with a
//     CachePurge config update (agent.Server.PurgeCache); the interceptor
//     answers it when it is given to the pool's config-update handler.
//
// A fleet of proxies shares decisions through Redis or Valkey with a
// [RedisStore] (WithStore) behind the in-process layer: a decision one
// proxy stored found by the others, purges through Redis generations, and
// a Redis outage degrading to the in-process layer, never to a failed
// request.
//
// The in-process layer is bounded by count (WithMaxEntries); it is
// github.com/maypok86/otter, chosen over ristretto for its exact
// admission (ristretto's TinyLFU refused most new decisions in our
// measurements, internal/cachecompare). It is keyed by a seeded 64-bit
// hash of the scope's values and compares the values themselves on a
// hit; a shared store is keyed by their SHA-256 ([Key]).
package cache
