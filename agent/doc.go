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
//   - The first message must be a handshake; the agent answers with its
//     capabilities, or with success=false and closes the connection when the
//     proxy speaks neither protocol version 2 nor protobuf. Anything else
//     first, or a second handshake, closes the connection.
//   - Events are handled concurrently, up to [WithMaxConcurrency] per
//     connection; events of one correlation id one after another, in order.
//     Each gets exactly one response, whose event id and correlation id the
//     server fills in.
//   - While handlers are quick they run on the goroutine reading the
//     connection, and a burst's answers leave in one write. A handler still
//     running after [WithInlineBudget] has the reading taken over, and the
//     connection's next events go to workers for a while.
//   - Events decode into recycled messages; with [WithBorrowedEvents] they
//     borrow the read buffer. The server never writes to a handler's answer,
//     so a constant answer may be returned for every event.
//   - Flow control: with as many events pending as the concurrency limit,
//     the agent sends PAUSE for the connection, and RESUME at three quarters
//     of it. A proxy that ignores the pause gets [WithMaxQueue] more events
//     queued, then RESOURCE_EXHAUSTED answers. A request with
//     [WithMaxQueuedPerRequest] events waiting is paused alone.
//   - A cancel message cancels the contexts of the request's events (of all
//     requests for an empty correlation id); queued ones are answered with
//     the cancellation error without calling the handler.
//   - Health reports go out after the handshake and every interval, with the
//     connection's load and latency percentiles; [MetricsReporter] and
//     [HealthReporter] add the handler's metrics and state.
//   - Pings are answered; drain and shutdown call the handler's Drain and
//     Shutdown hooks (drain reports DRAINING). [Peer.RequestConfigUpdate]
//     and [Peer.Log] send to the proxy from a handler ([PeerFromContext]).
//   - Unknown frame types and message cases are skipped and counted; a
//     malformed, truncated, oversize or empty frame closes that connection.
//
// On gRPC, half-closing ProcessStream lets the agent answer what it has
// before it ends the stream; on the framed transport end of file closes the
// connection at once. [Server.Shutdown] drains gracefully, [Server.Close]
// closes at once; both wait for every goroutine the server started.
package agent
