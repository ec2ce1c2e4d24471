// Package agent is the agent side of the Sentinel agent protocol v2: write a
// [Handler] that decides on a proxy's events, and serve it with a [Server]
// over any transport the proxy speaks.
//
//	srv, err := agent.NewServer(myHandler, agent.WithAgentID("waf-1"))
//	ln, err := srv.ListenUnix("/run/waf.sock")   // framed Unix socket, mode 0600
//	go srv.ServeUnix(ctx, ln)
//	srv.RegisterGRPC(grpcServer)                 // grpc-go, ProcessStream
//	go srv.ServeH2C(ctx, tcpListener)            // Connect, gRPC, gRPC-Web + health + reflection
//	...
//	srv.Shutdown(ctx)
//
// Every connection, whatever its transport, runs the same session:
//
//   - The proxy's first message must be a handshake. The agent answers with
//     its capabilities, or with success=false and closes the connection when
//     the proxy speaks neither protocol version 2 nor the protobuf encoding.
//     Anything else first, or a second handshake, closes the connection.
//   - Events are handled concurrently, up to [WithMaxConcurrency] at a time
//     per connection; events with the same correlation id are handled one
//     after another in the order they arrived, so a slow request never holds
//     up the others. Each event gets exactly one response carrying the
//     event's event id and correlation id, filled in by the server.
//   - Where a handler runs: while handlers are quick, on the goroutine that
//     reads the connection, like a plain request-reply server (no hand-off
//     per event; the answers to a burst of events leave in one write). A
//     handler still running after [WithInlineBudget] (1 ms) has the reading
//     taken over by a new goroutine, and the connection's next events go to
//     worker goroutines for a while (longer after each slow attempt), so a
//     blocking handler delays the others by at most the budget, rarely.
//   - Memory: events decode into recycled messages. With
//     [WithBorrowedEvents], events on Unix-socket and reverse connections
//     borrow the connection's read buffer (valid only during the handler
//     call) instead of a copy of each read. The server never writes to an
//     answer a handler returns, so a constant answer may be built once and
//     returned for every event.
//   - Flow control: when as many events are pending (running or queued) as
//     the concurrency limit, the agent sends flow_control PAUSE for the
//     whole connection, and RESUME once they fall to three quarters of it.
//     The reader never blocks on the handler: a proxy that ignores the pause
//     has up to [WithMaxQueue] more events queued, and events beyond that
//     are answered at once with a RESOURCE_EXHAUSTED error. When one request
//     has [WithMaxQueuedPerRequest] events waiting (a body streamed faster
//     than the handler reads it), the agent pauses that request alone: a
//     PAUSE carrying its correlation id, and RESUME when half are done.
//   - A cancel message cancels the context of the request's running and
//     queued events (all requests when its correlation id is empty); queued
//     events are then answered with the cancellation error without calling
//     the handler. Contexts are also cancelled when the connection ends.
//   - Health: a report right after the handshake and then every interval
//     (the proxy's health_report_interval_ms, or [WithHealthInterval]),
//     with the connection's load: events in flight and queued, latency
//     percentiles of the last 1024 events, counts of processed, rejected and
//     timed-out events. A handler implementing [MetricsReporter] has its
//     metrics sent at the same interval; one implementing [HealthReporter]
//     sets the state.
//   - Pings are answered with pongs; drain and shutdown notices call the
//     handler's Drain and Shutdown hooks, and drain switches the reported
//     state to DRAINING. [Peer.RequestConfigUpdate] and [Peer.Log] send to
//     the proxy from a handler ([PeerFromContext]).
//   - Unknown frame types and message cases are skipped and counted. A
//     malformed, truncated, oversize or zero-length frame is a protocol
//     error that closes that connection only.
//
// On gRPC, half-closing ProcessStream lets the agent answer what it has
// before it ends the stream; on the framed transport end of file closes the
// connection at once. [Server.Shutdown] drains gracefully, [Server.Close]
// closes at once; both wait for every goroutine the server started.
package agent
