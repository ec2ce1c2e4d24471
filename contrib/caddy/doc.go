// Package caddyagentwire is a Caddy v2 HTTP handler module,
// http.handlers.agentwire, that puts Sentinel v2 agents (WAF, auth, bot
// detection; in Go, Node, Python or any language) in front of the handlers
// that follow it, usually reverse_proxy. It is package httpguard inside
// Caddy: the handler's agents form one chain, asked in order for every
// request its matcher selects.
//
// The smallest Caddyfile:
//
//	127.0.0.1:8080 {
//		agentwire waf unix:///run/waf.sock
//		reverse_proxy 127.0.0.1:9000
//	}
//
// The agentwire directive is ordered after forward_auth (before encode,
// the handle blocks and reverse_proxy), so agents see requests as
// rewritten by rewrite and uri, and response bodies before encode
// compresses them. See README.md for the full syntax and JSON config.
//
// # Lifecycle
//
// Provision connects a pool to the handler's agents; handlers (in one
// config or in successive ones) whose agents have the same connection
// settings share one pool through a caddy.UsagePool, so a config reload
// that keeps the agents keeps their connections. Cleanup closes the
// handler's guard and, with the pool's last user, drains and closes the
// pool. An agent must accept a connection when the config loads, or the
// config is refused; afterwards the pool redials it with backoff.
//
// # Agents that dial Caddy
//
// A handler's reverse listener (a Unix socket or a loopback TCP address)
// takes connections from agents that dial Caddy, authenticated by tokens
// given as placeholders ({env.NAME}, {file./path}) so that no config holds
// one; an agent of the chain whose endpoint is "reverse" is served by them.
// The listener belongs to the handler's pool and starts with the config
// (the agentwire app's Start), not when it is only validated; Caddy's
// shared sockets let a reload hand the address to a new pool.
//
// # Client address
//
// Agents get Caddy's client address (the client_ip variable), which
// honours the server's trusted_proxies, not the connection's.
//
// # Errors of the handlers that follow
//
// An error returned by the next handler (reverse_proxy's 502, say) is
// answered inside the guard with its status and an empty body, so agents
// see it as the response, and logged; handle_errors routes do not see it.
package caddyagentwire
