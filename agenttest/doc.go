// Package agenttest is a conformance suite for agents of the agentwire
// (Sentinel v2) protocol, whatever language they are written in.
//
// [Run] connects to an agent endpoint (unix:///path, grpc://host:port,
// http://host:port, …) as a proxy would, exercises the protocol — handshake
// and version negotiation, every event kind, both decision shapes and header
// mutations, many concurrent events, cancel, ping, health reports, bad
// frames, flow control — and returns one [Result] per check. [WriteTable]
// prints them; [Passed] tells whether every required check passed.
//
// The suite only needs the endpoint: it learns the rest from the agent's
// handshake. What it cannot learn (which path the agent blocks, which header
// it adds) is configured with options such as [WithBlockPath] and
// [WithMutationHeader]. cmd/agentcheck wraps it as a command.
package agenttest
