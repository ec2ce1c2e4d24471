// Package agenttest is a conformance suite for agents of the agentwire
// (Sentinel v2) protocol, whatever language they are written in.
//
// [Run] connects to an agent endpoint (unix:///path, grpc://host:port,
// http://host:port, …) as a proxy would, handshakes, exercises the protocol
// and returns one [Result] per check; [WriteTable] prints them (a
// [TableWriter] prints each as it comes, see [WithResultHandler]) and
// [Passed] tells whether every required check passed. [Checks] describes
// the checks: the handshake and version rejection, every event kind,
// decisions and header mutations, many events in flight, cancel, ping,
// health, malformed, oversize and unknown frames, flow control.
// cmd/agentcheck wraps it as a command.
//
// The suite judges an agent by what it declares in the handshake. A check
// of something the agent did not advertise is skipped (health reports, flow
// control), or runs as an optional check with a short budget (an event kind
// not in supported_events). The frames/ checks write raw frames and apply
// to Unix sockets only. Each check has its own time budget
// ([WithCheckTimeout]); a check that did not run is skipped, never failed.
// What the handshake cannot tell (which path the agent blocks, which header
// it adds) is set with options such as [WithBlockPath] and
// [WithMutationHeader].
//
// For agents in other languages, [StartProcess] runs the agent as a child
// process and waits for its "ready" line, so a Go test can run the suite
// against it.
package agenttest
