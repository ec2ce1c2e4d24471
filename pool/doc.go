// Package pool is the proxy's side of many agent connections: it keeps
// several [transport.Conn]s to each agent and routes every event of a
// proxied exchange through one request pipeline ([Pool.Send]).
//
// Agents join by endpoint ([Pool.AddAgent]: unix://, grpc://, grpcs://,
// http(s):// or dns:/// for DNS discovery of instances) or by connecting to
// the proxy (reverse connections: a [transport.ReverseListener] built with
// [Pool.ReverseOptions], or [Pool.AdoptConn]). The pool never
// looks at transports: it dials through a [Dialer] ([transport.Dial] by
// default) and uses only the Conn interface.
//
// Balancing follows grpc-go (package pool/balancer): a builder makes a
// balancer per agent, which turns the connections that are ready and not
// draining into an immutable picker, swapped atomically, so picking never
// blocks. DNS discovery is a resolver (pool/resolver) feeding the agent its
// endpoints; the circuit breaker is pool/breaker.
//
// Health comes from the transport, which pushes each connection's status
// to the pool's listener (a closed connection leaves at once and a new one
// is dialled, with backoff and jitter, forever; see [ConnState]), from the agent's
// reports (draining and unhealthy connections take no new requests,
// degraded ones weigh less) and from the pool's own accounting: consecutive
// transport failures take a connection out until a probe ping answers, and
// a per-agent circuit breaker fails new requests fast while the agent is
// failing. Errors the agent reported ([agentwire.IsWireError]) never count
// as failures; caller cancellations and deadlines count only on a
// connection that has received nothing since the call was sent (a hung
// agent, which the transport's liveness check also drops).
//
// Every event of a request goes to the connection that received its
// headers (correlation affinity), so the agent's per-request state stays
// on one connection; sticky sessions ([Pool.SendSession]) extend this to
// long-lived streams. Flow control, concurrency limits, cancellation,
// config push ([Pool.PushConfig]), draining ([Pool.Drain],
// [Pool.Shutdown]) and statistics ([Pool.Stats]) complete it.
//
// Interceptors ([WithInterceptors]) wrap the send of every event, as
// connect-go's wrap a call: they see the event and its decision, may answer
// without the agent or call the rest of the pipeline more than once; once
// it returns, the [Call] tells where the event went. Tracing and metrics
// (package otel) plug in as one interceptor that may also wrap dials,
// see connections and watch the pool ([DialInterceptor],
// [ConnInterceptor], [Watcher]). The pipeline times events only for
// interceptors that may read [Call.Duration]: one that never does says so
// ([UntimedInterceptor]), as the cache, shadow and failover ones do.
package pool
