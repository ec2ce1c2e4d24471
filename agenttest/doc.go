// Package agenttest is a conformance suite for agents of the agentwire
// (Sentinel v2) protocol, whatever language they are written in.
//
// [Run] connects to an agent endpoint (unix:///path, grpc://host:port,
// http://host:port, …) as a proxy would, exercises the protocol and returns
// one [Result] per check; [WriteTable] prints them and [Passed] tells
// whether every required check passed. cmd/agentcheck wraps it as a
// command. The checks, in the order they run:
//
//	handshake                      the handshake succeeds; capabilities declare protocol 2 and an agent id
//	handshake/unsupported-version  a handshake offering only version 99 is answered with success=false
//	event/<kind>                   each of the eight event kinds is answered with its correlation id
//	decision/block                 a request for the block path (/admin) is blocked with a 4xx/5xx
//	decision/allow                 a request for the allow path (/) is allowed
//	decision/header-mutation       an allowed request sets or adds the configured header
//	concurrency/many-in-flight     500 events over 50 requests at once, each answer matched to its event
//	concurrency/same-request       two events of one request in flight at once
//	cancel                         cancelling in-flight events, then every request, leaves the connection working
//	ping                           pings are answered
//	health                         reports arrive right after the handshake and then at the interval
//	frames/malformed               an undecodable frame closes that connection; new ones are served
//	frames/oversize                a frame announced over the size limit closes the connection; new ones are served
//	frames/unknown-type            a frame of unknown type is skipped; the next request is answered
//	flow-control (optional)        twice the concurrency limit at once: the agent pauses (and resumes) or answers all
//
// The frames/ checks write raw frames and apply to Unix sockets only. The
// suite learns what it can from the handshake; what it cannot (which path
// the agent blocks, which header it adds) is set with options such as
// [WithBlockPath] and [WithMutationHeader].
//
// For agents in other languages, [StartProcess] runs the agent as a child
// process and waits for its "ready" line, so a Go test can run the suite
// against it.
package agenttest
