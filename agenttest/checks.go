package agenttest

import (
	"context"
	"fmt"
	"slices"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// check is one conformance check. run returns what it observed; an error
// fails the check, a skipError skips it.
type check struct {
	name string
	desc string
	// optional checks test what the protocol recommends but does not require.
	optional bool
	// framed checks write raw frames; they are skipped on gRPC and HTTP.
	framed bool
	// advertised, when set, tells whether the agent declared what the check
	// tests, and if not, what it lacks. Such a check is then skipped, or,
	// with probe, run as an optional check with a short budget.
	advertised func(caps *agentv2.AgentCapabilities) (bool, string)
	probe      bool
	run        func(ctx context.Context, s *suite) (string, error)
}

// checks lists the suite in the order it runs.
var checks = []check{
	{name: "handshake", run: checkHandshake,
		desc: "the handshake succeeds; capabilities declare protocol 2 and an agent id"},
	{name: "handshake/unsupported-version", run: checkUnsupportedVersion,
		desc: "a handshake offering only version 99 is answered with success=false"},
	eventCheckOf(kindConfigure),
	eventCheckOf(kindRequestHeaders),
	eventCheckOf(kindRequestBodyChunk),
	eventCheckOf(kindResponseHeaders),
	eventCheckOf(kindResponseBodyChunk),
	eventCheckOf(kindWebSocketFrame),
	eventCheckOf(kindGuardrail),
	eventCheckOf(kindRequestComplete),
	{name: "decision/block", run: checkBlock,
		desc: "a request for the block path (/admin) is blocked with a 4xx/5xx"},
	{name: "decision/allow", run: checkAllow,
		desc: "a request for the allow path (/) is allowed"},
	{name: "decision/header-mutation", run: checkMutation,
		desc: "an allowed request sets or adds the -mutation-header header (skipped without one)"},
	{name: "concurrency/many-in-flight", run: checkManyInFlight,
		desc: "500 events over 50 requests at once, each answer matched to its event"},
	{name: "concurrency/same-request", run: checkSameRequest,
		desc: "two events of one request in flight at once"},
	{name: "cancel", run: checkCancel,
		desc: "cancelling in-flight events, then every request, leaves the connection working"},
	{name: "ping", run: checkPing,
		desc: "pings are answered"},
	{name: "health", run: checkHealth, advertised: advertisesHealth,
		desc: "reports arrive right after the handshake and then at the interval (skipped unless advertised)"},
	{name: "frames/malformed", framed: true, run: checkMalformed,
		desc: "an undecodable frame closes that connection; new ones are served (unix:// only)"},
	{name: "frames/oversize", framed: true, run: checkOversize,
		desc: "a frame announced over the size limit closes the connection; new ones are served (unix:// only)"},
	{name: "frames/unknown-type", framed: true, run: checkUnknownType,
		desc: "a frame of unknown type is skipped; the next request is answered (unix:// only)"},
	{name: "flow-control", optional: true, run: checkFlowControl, advertised: advertisesFlowControl,
		desc: "twice the concurrency limit at once: the agent pauses (and resumes) or answers all (skipped unless advertised)"},
}

// eventCheckOf is the check of event kind k. A kind the agent did not list
// in supported_events must still be answered (docs/protocol.md §6), but
// agents that ignore it are common: for them the check is optional.
func eventCheckOf(k eventKind) check {
	return check{
		name: "event/" + eventField(k),
		desc: "a " + eventField(k) + " event is answered with its correlation id (optional, given " +
			probeTimeout.String() + ", if its kind is not in supported_events)",
		advertised: func(caps *agentv2.AgentCapabilities) (bool, string) {
			return slices.Contains(caps.GetSupportedEvents(), k), fmt.Sprintf("%v is not in supported_events", k)
		},
		probe: true,
		run:   eventCheck(k),
	}
}

func advertisesHealth(caps *agentv2.AgentCapabilities) (bool, string) {
	return caps.GetFeatures().GetHealthReporting(), "capabilities.features.health_reporting is false"
}

func advertisesFlowControl(caps *agentv2.AgentCapabilities) (bool, string) {
	return caps.GetFeatures().GetFlowControl(), "capabilities.features.flow_control is false"
}

// CheckInfo describes one check of the suite.
type CheckInfo struct {
	// Name identifies the check, as in [Result].Name and [WithChecks].
	Name string
	// Description says in a line what the check expects of the agent.
	Description string
	// Optional checks never fail the suite.
	Optional bool
}

// Checks describes every check, in the order they run.
func Checks() []CheckInfo {
	out := make([]CheckInfo, len(checks))
	for i, c := range checks {
		out[i] = CheckInfo{Name: c.name, Description: c.desc, Optional: c.optional}
	}
	return out
}

// CheckNames lists the names of every check, in the order they run.
func CheckNames() []string {
	names := make([]string, len(checks))
	for i, c := range checks {
		names[i] = c.name
	}
	return names
}
