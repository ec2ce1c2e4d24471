// Package testagent holds the test agents agentwire's own suites share:
// [Peer], an agent that follows a script over raw frames or raw gRPC
// messages, so that it can send what no well-behaved agent would (lies,
// late and duplicate answers, malformed frames), and [AgentProcess], an
// agent binary run as a child process that can be signalled. It is
// internal: the public conformance kit is agenttest.
package testagent
