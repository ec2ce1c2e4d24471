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

// numKinds bounds the event kinds (agentv2.EventType values).
const numKinds = int(agentv2.EventType_EVENT_TYPE_CONFIGURE) + 1

// kind is what spans and metrics say about one event kind.
type kind struct {
	method string                // rpc.method: the Handler method's name
	attrs  [2]attribute.KeyValue // rpc.method and agentwire.event.kind
}

var kinds = func() [numKinds]kind {
	names := [numKinds][2]string{
		{"Unknown", "unspecified"},
		{"RequestHeaders", "request_headers"},
		{"RequestBodyChunk", "request_body_chunk"},
		{"ResponseHeaders", "response_headers"},
		{"ResponseBodyChunk", "response_body_chunk"},
		{"RequestComplete", "request_complete"},
		{"WebSocketFrame", "websocket_frame"},
		{"GuardrailInspect", "guardrail_inspect"},
		{"Configure", "configure"},
	}
	var k [numKinds]kind
	for i, n := range names {
		k[i] = kind{method: n[0], attrs: [2]attribute.KeyValue{RPCMethodKey.String(n[0]), EventKindKey.String(n[1])}}
	}
	return k
}()

func kindOf(t agentv2.EventType) *kind {
	if int(t) < 0 || int(t) >= numKinds {
		return &kinds[0]
	}
	return &kinds[t]
}

// spanNames returns the span name of each event kind: "service/Method".
func spanNames(service string) [numKinds]string {
	var n [numKinds]string
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
