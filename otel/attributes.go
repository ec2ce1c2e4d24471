package otel

import (
	"errors"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Attribute keys. The rpc.* keys follow the OpenTelemetry RPC semantic
// conventions; the others are agentwire's.
const (
	RPCSystemKey       = attribute.Key("rpc.system")
	RPCServiceKey      = attribute.Key("rpc.service")
	RPCMethodKey       = attribute.Key("rpc.method")
	RPCStatusCodeKey   = attribute.Key("rpc.grpc.status_code")
	AgentIDKey         = attribute.Key("agentwire.agent.id")
	TransportKey       = attribute.Key("agentwire.transport")
	EventKindKey       = attribute.Key("agentwire.event.kind")
	EventIDKey         = attribute.Key("agentwire.event.id")
	CorrelationIDKey   = attribute.Key("agentwire.correlation_id")
	DecisionKey        = attribute.Key("agentwire.decision")
	BlockStatusKey     = attribute.Key("agentwire.block.status")
	OutcomeKey         = attribute.Key("agentwire.outcome")
	ConnIDKey          = attribute.Key("agentwire.connection.id")
	ConnStateKey       = attribute.Key("agentwire.connection.state")
	ProxyIDKey         = attribute.Key("agentwire.proxy.id")
	FlowModeKey        = attribute.Key("agentwire.flow_control.mode")
	FlowResultKey      = attribute.Key("agentwire.flow_control.result")
	FlowWaitedKey      = attribute.Key("agentwire.flow_control.waited_ms")
	BreakerStateKey    = attribute.Key("agentwire.breaker.state")
	DropReasonKey      = attribute.Key("agentwire.drop.reason")
	ParentEventKindKey = attribute.Key("agentwire.parent.event.kind")
)

// RPCSystem is the rpc.system of every span and metric: agentwire events
// travel over Unix sockets as well as gRPC.
const RPCSystem = "agentwire"

var rpcSystem = RPCSystemKey.String(RPCSystem)

// Span event names.
const (
	EventFlowControl  = "agentwire.flow_control"
	EventAffinityMiss = "agentwire.affinity_miss"
	EventFailOpen     = "agentwire.fail_open"
)

// kind is what spans and metrics say about one event kind.
type kind struct {
	method string                // rpc.method: the Handler method's name
	attrs  [2]attribute.KeyValue // rpc.method and agentwire.event.kind
}

func newKind(method, name string) kind {
	return kind{method: method, attrs: [2]attribute.KeyValue{RPCMethodKey.String(method), EventKindKey.String(name)}}
}

// kinds describes the event kinds by agentv2.EventType value, from the
// generated event table: rpc.method is the handler method, and
// agentwire.event.kind the type's name without its prefix, in lower case
// ("request_headers"). Unknown types share entry 0.
var kinds = func() []kind {
	n := 1
	for _, e := range agentv2.ProxyToAgentEvents {
		n = max(n, int(e.Type)+1)
	}
	k := make([]kind, n)
	for i := range k {
		k[i] = newKind("Unknown", "unspecified")
	}
	for _, e := range agentv2.ProxyToAgentEvents {
		k[e.Type] = newKind(e.Method, strings.ToLower(strings.TrimPrefix(e.Type.String(), "EVENT_TYPE_")))
	}
	return k
}()

// kindIndex is the index of t in kinds.
func kindIndex(t agentv2.EventType) int {
	if int(t) < 0 || int(t) >= len(kinds) {
		return 0
	}
	return int(t)
}

func kindOf(t agentv2.EventType) *kind { return &kinds[kindIndex(t)] }

// spanNames returns the span name of each event kind: "service/Method".
func spanNames(service string) []string {
	n := make([]string, len(kinds))
	for i := range kinds {
		n[i] = service + "/" + kinds[i].method
	}
	return n
}

// Outcomes (agentwire.outcome) of an event, besides the error code names
// (agentwire.Code.String, for example "deadline_exceeded") of events that
// failed in the proxy.
const (
	OutcomeAllow      = "allow"
	OutcomeBlock      = "block"
	OutcomeRedirect   = "redirect"
	OutcomeChallenge  = "challenge"
	OutcomeNone       = "no_decision"
	OutcomeFailOpen   = "fail_open"
	OutcomeAgentError = "agent_error"
)

// decisionOf names the decision of resp, "" when it carries none.
func decisionOf(resp *agentv2.AgentResponse) string {
	switch resp.GetDecision().(type) {
	case *agentv2.AgentResponse_Allow:
		return OutcomeAllow
	case *agentv2.AgentResponse_Block:
		return OutcomeBlock
	case *agentv2.AgentResponse_Redirect:
		return OutcomeRedirect
	case *agentv2.AgentResponse_Challenge:
		return OutcomeChallenge
	}
	return ""
}

// outcomeOf is the agentwire.outcome of an event that ended with resp and
// err (failOpen when the pool answered without the agent).
func outcomeOf(resp *agentv2.AgentResponse, err error, failOpen bool) string {
	switch {
	case err != nil && agentwire.IsWireError(err):
		return OutcomeAgentError
	case err != nil:
		return agentwire.CodeOf(err).String()
	case failOpen:
		return OutcomeFailOpen
	case resp.GetError() != nil:
		return OutcomeAgentError
	}
	if d := decisionOf(resp); d != "" {
		return d
	}
	return OutcomeNone
}

// terminal reports whether a decision ends the request.
func terminal(resp *agentv2.AgentResponse) bool {
	switch resp.GetDecision().(type) {
	case *agentv2.AgentResponse_Block, *agentv2.AgentResponse_Redirect, *agentv2.AgentResponse_Challenge:
		return true
	}
	return false
}

// serverErrorCodes are the codes that mark an agent's (server) span as an
// error, as the gRPC semantic conventions do: the others are the caller's
// problem. Client spans are errors for every code.
var serverErrorCodes = map[agentwire.Code]bool{
	agentwire.CodeUnknown:          true,
	agentwire.CodeDeadlineExceeded: true,
	agentwire.CodeUnimplemented:    true,
	agentwire.CodeInternal:         true,
	agentwire.CodeUnavailable:      true,
	agentwire.CodeDataLoss:         true,
}

// spanStatus is the status table of the package documentation.
func spanStatus(server, blockIsError bool, resp *agentv2.AgentResponse, err error) (codes.Code, string) {
	if err != nil {
		code := agentwire.CodeOf(err)
		if server && !serverErrorCodes[code] {
			return codes.Unset, ""
		}
		return codes.Error, errorMessage(err)
	}
	if blockIsError && terminal(resp) {
		return codes.Error, "agent decided " + decisionOf(resp)
	}
	return codes.Unset, ""
}

func errorMessage(err error) string {
	if e := (*agentwire.Error)(nil); errors.As(err, &e) {
		if m := e.Message(); m != "" {
			return e.Code().String() + ": " + m
		}
	}
	return err.Error()
}

// transportOf names the transport of a pool connection from its instance
// endpoint's scheme (the pool dials by scheme; adopted reverse connections
// have the endpoint "reverse").
func transportOf(endpoint string) string {
	scheme, _, ok := strings.Cut(endpoint, "://")
	if !ok {
		scheme, _, _ = strings.Cut(endpoint, ":")
	}
	switch scheme {
	case "unix":
		return "uds"
	case "grpc", "grpcs":
		return "grpc"
	case "http", "https":
		return "connect"
	case "":
		return "unknown"
	}
	return scheme
}
