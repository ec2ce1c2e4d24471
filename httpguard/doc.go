// Package httpguard puts agents in front of any net/http handler,
// httputil.ReverseProxy included: a [Guard] over a pool.Pool turns each
// request into the agent protocol's events, sends them to a chain of
// agents per route, and applies their decisions.
//
//	g, err := httpguard.New(p,
//		httpguard.WithRoute("/api/",
//			httpguard.WithAgent("auth", httpguard.WithTimeout(50*time.Millisecond)),
//			httpguard.WithAgent("waf", httpguard.WithEvents(httpguard.RequestHeaders|httpguard.RequestBody),
//				httpguard.FailOpen())))
//	http.ListenAndServe(addr, g.Middleware(proxy))
//
// # Routes and chains
//
// A request's route is the first function route ([WithRouteFunc]) that
// matches, else the most specific pattern route ([WithRoute]) as
// [http.ServeMux] picks it (an unclean path is matched as ServeMux would
// clean it). A request that matches no route goes to next unguarded: add
// a "/" route to guard everything. Each route has a chain of agents
// ([WithAgent]), asked in order; an agent marked [Parallel] is asked at
// the same time as the one before it. Every agent gets the request
// headers; [WithEvents] chooses the others (default: request_complete).
//
// # How decisions combine
//
//   - The first block, redirect or challenge ends the request, and later
//     agents are not asked. In a parallel group the first such answer to
//     arrive cancels the others in flight (CANCEL_REASON_BLOCKED_BY_AGENT);
//     of the answers received, the earliest in chain order wins.
//   - An agent's failure (error, timeout, unavailable) fails it closed by
//     default: the client gets the agent's status ([FailClosed], 503 by
//     default) and the request ends as if it had blocked. [FailOpen]
//     counts the failure ([Guard.Stats]), lists the agent in
//     [Audit.FailedOpen], and sends it no more events of the request.
//   - Every agent sees the request as the client sent it. Request header
//     mutations are collected in chain order and applied, in that order,
//     before next sees the request (a Host mutation sets Request.Host);
//     mutations an agent sends on a body chunk come too late and are
//     dropped. Response header mutations (from any answer before the
//     response headers are written) are applied in chain order before
//     the client sees the response. Mutations with invalid names or
//     values are dropped, and none apply to the guard's own answers.
//   - Audit metadata is merged in chain order (for custom keys, the later
//     agent wins), is available to next through [AuditFrom], and is logged
//     with log/slog at the end of the request when it says anything.
//   - A block answers with the agent's status (403 when invalid), headers
//     and body; a redirect with its status (302 when not 3xx) and
//     Location; a challenge through the [ChallengeResponder]
//     ([DefaultChallenge]: 403 with an X-Agentwire-Challenge header).
//
// # Bodies
//
// Request bodies go to the agents in chunks ([WithChunkSize]) as next
// reads them: a chunk is read from the client only once the agents have
// answered the one before, and reaches next only after they let it
// through. Nothing is buffered unless an agent answers needs_more (on the
// headers or a chunk): then chunks are held, and on headers next is not
// called, until it decides, up to its [WithMaxBodyBytes]; past that limit
// it has failed with [ErrBodyLimit] (fail closed: 413). Each agent
// inspects at most its limit of each body; the rest passes uninspected.
// Response bodies go the same way as next writes them, before the client
// sees them, with needs_more holding the response.
//
// An agent may replace or drop the chunk it answers (a body mutation,
// protocol.md §18): next or the client gets the chunk as the agent left
// it. A mutation the guard cannot tie to the chunk it holds (another
// chunk's index, another event, two agents editing one chunk) or that
// changes the length of a body sent with Content-Length fails the agent,
// as a protocol error would. Routing metadata the agents set on the
// request headers reaches next through [RoutingMetadata].
//
// A decision that comes while next runs (on a request chunk, the response
// headers or a response chunk) replaces next's response if nothing of it
// reached the client: next's writes are then discarded and its body reads
// fail with [ErrBlocked]. Once the response has started it cannot be
// unsent: Write returns [ErrLateBlock] and the guard aborts the response
// with http.ErrAbortHandler when next returns, so the client sees it cut
// (a reset stream, a closed connection), never complete.
//
// # The end of a request
//
// When next returns, each agent that holds the request gets
// request_complete (sent in the background, see [Guard.Close]) if it asked
// for it, else a cancel. A request that ended early is cancelled instead:
// CANCEL_REASON_CLIENT_DISCONNECT when the client went away,
// CANCEL_REASON_BLOCKED_BY_AGENT after a block, CANCEL_REASON_TIMEOUT
// after an agent timed out failing closed, CANCEL_REASON_UPSTREAM_ERROR
// when the handler reported one ([ReportUpstreamError],
// [ProxyErrorHandler]). A client that goes away stops the chain.
//
// # Upgrades
//
// An upgrade (a websocket) is guarded on its request headers like any
// request, and its events go on a sticky session (pool.Pool.SendSession),
// so they stay on the connections that saw its headers. When next hijacks
// the connection (httputil.ReverseProxy does on 101) and an agent asked
// for [WebSocketFrames], the frames read from and written to the hijacked
// net.Conn go to the agents, both ways, before they pass: payloads
// unmasked, a continuation with its message's type, each agent seeing at
// most its byte limit of a frame; frames larger than every agent's limit
// pass uninspected. A block closes the connection: the client gets a
// close frame (1008, policy violation), and the copier its error
// ([ErrFrameBlocked]). An agent's websocket decision drops the frame, or
// closes the connection with its code and reason ([FrameClosedError]). Bytes a handler moves through the hijacked
// bufio.ReadWriter are not inspected.
//
// # Metadata
//
// The request_headers event carries a correlation id
// ([WithCorrelationIDs]), the request id (X-Request-Id, else the
// correlation id), the client address (behind [WithTrustedProxies], from
// X-Forwarded-For), TLS version and server name, the route and upstream
// ids ([WithRouteID], [WithUpstream]) and the trace context of the
// request's context ([WithPropagator]).
//
// # Concurrency
//
// A Guard and its middleware are safe for concurrent use. Within one
// request, request body events may be sent from the goroutine that reads
// the body (an http.Transport's) while response events are sent from
// next's; the guard's per-request state is locked for that. The
// ResponseWriter next gets is, like any, not safe for concurrent use.
package httpguard
