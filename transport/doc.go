// Package transport is the proxy side of agentwire: connections to agents.
//
// Every transport implements one interface, [Conn], so the pool never knows
// which it holds. A Conn handshakes on connect, multiplexes many in-flight
// events (matched by event id, or by correlation id in order for agents
// that do not echo ids), fails every waiting call at once with Unavailable
// when the agent goes away, and honours the agent's signals: flow control,
// health, metrics, config-update requests, logs and pings.
//
// Transports: [DialUnix] (framed protobuf over a Unix socket), [DialGRPC],
// [DialConnect], and [NewReverseListener], where agents dial the proxy,
// register (version, id, allowlist, token, a cap or a pool's
// [WithAdmission]) and are handed over as Conns built by [NewFramedConn].
// [Dial] picks a dialled transport from an endpoint URL's scheme. All share
// one session core; the behaviour suite in this package runs over each.
package transport
