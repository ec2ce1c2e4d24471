// Package failover keeps a request going when the agent connection
// holding it fails, and hedges slow request-header decisions. Both are
// pool interceptors, opt-in per agent:
//
//	fo, err := failover.New(failover.WithFallback("waf", "waf-backup"))
//	hg, err := failover.NewHedger(failover.WithHedgedAgents("waf"))
//	p, err := pool.New(pool.WithInterceptors(fo, hg)) // failover outside hedging
//
// # Failover
//
// An [Interceptor] keeps each request's events (headers, request and
// response body chunks and headers) with the answers the caller got,
// bounded per request ([WithRequestBuffer]) and in total
// ([WithTotalBuffer]), until request_complete or a block, redirect or
// challenge ends it. When an event fails because its connection (or the
// agent) did — the connection died, went silent or broke the protocol, or
// no connection was available — the request is replayed in order on
// another connection of the same agent, then on the fallback agent if one
// is configured, and the failed event is sent there: the caller gets that
// answer. The agent sees the request anew from its headers; the caller
// sees one answer per event, never two; the replayed headers carry
// RequestMetadata.replay_attempt (the failover count). A replayed event's
// answer is not returned: it is compared with the one the caller got (decision,
// needs_more, header mutations), and if it differs the request fails.
//
// Failover refuses, and the event fails as it would without it (an
// error, never an allow), when the request outgrew its buffer, saw an
// event that is not replayed (websocket frames, guardrail inspections), a
// replayed event was answered differently, or the retry budget is spent
// ([WithRetryBudget]: a token bucket like gRPC's retry throttling, so a
// dying fleet does not double its load). A request that could not fail
// over fails its later events too. request_complete is never failed over.
//
// # Hedging
//
// A [Hedger] sends request headers that have no answer after the hedge
// delay (fixed, or a quantile of the agent's recent latencies) to a second
// connection of the same agent. The first answer wins and the request is
// pinned to its connection; the other attempt is cancelled (a
// CancelRequest on its connection) and its answer, if it comes, is
// dropped. At most a fraction of requests are hedged ([WithHedgeBudget]).
// Use it with least-in-flight balancing (the default): under round robin
// the hedge takes the other turn, and every first attempt meets the slow
// connection.
//
// Counts go to OpenTelemetry (agentwire.failover.requests and
// agentwire.hedge.requests, by agent and outcome) and to Stats.
package failover
