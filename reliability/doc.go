// Package reliability is agentwire's reliability and security suite: agents
// as separate processes killed, stopped and restarted under load; agents
// that break the protocol on purpose; hostile reverse-connection clients;
// Unix-socket permissions and TLS; fuzzing of handshake and registration
// handling; and a soak test with random agent restarts.
//
// The suite lives in this package's tests. The package itself holds what
// they share and what other suites may reuse: [AgentProcess], an agent
// binary run as a child process that can be signalled, and [Peer], a test
// agent that speaks raw frames (or raw gRPC messages) so that it can send
// what no well-behaved agent would.
//
// The long parts (a 60 s soak) run when AGENTWIRE_LONG=1, which .ci/run
// sets; otherwise a 5 s soak runs with the normal test command.
package reliability
