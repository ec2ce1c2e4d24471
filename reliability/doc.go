// Package reliability is agentwire's reliability and security suite, in
// its tests: agents as separate processes killed, stopped and restarted
// under load; agents that lie, answer late, twice or with nothing, and
// break the protocol on purpose; hostile reverse-connection clients;
// Unix-socket permissions and TLS; fuzzing of handshake, registration and
// decision matching; and a soak test with random agent restarts. The test
// agents it uses live in internal/testagent.
//
// The long parts (a 60 s soak, 10,000 events per decision-safety case)
// run when AGENTWIRE_LONG=1, which .ci/run sets.
package reliability
