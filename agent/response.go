package agent

import (
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Allow returns a response that lets the request continue.
func Allow() *agentv2.AgentResponse {
	return &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}
}

// Block returns a response that answers the client with status and body
// (no body if empty).
func Block(status uint32, body string) *agentv2.AgentResponse {
	b := &agentv2.BlockDecision{Status: status}
	if body != "" {
		b.Body = &body
	}
	return &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Block{Block: b}}
}

// Redirect returns a response that redirects the client to url with status
// (302 if 0).
func Redirect(url string, status uint32) *agentv2.AgentResponse {
	if status == 0 {
		status = 302
	}
	return &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Redirect{
		Redirect: &agentv2.RedirectDecision{Url: url, Status: status},
	}}
}

// Challenge returns a response that challenges the client (captcha, JS
// challenge, ...). params is used as is.
func Challenge(challengeType string, params map[string]string) *agentv2.AgentResponse {
	return &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Challenge{
		Challenge: &agentv2.ChallengeDecision{ChallengeType: challengeType, Params: params},
	}}
}

// SetHeader returns an operation that replaces header name with value.
func SetHeader(name, value string) *agentv2.HeaderOp {
	return &agentv2.HeaderOp{Operation: &agentv2.HeaderOp_Set{Set: &agentv2.Header{Name: name, Value: value}}}
}

// AddHeader returns an operation that adds a value to header name.
func AddHeader(name, value string) *agentv2.HeaderOp {
	return &agentv2.HeaderOp{Operation: &agentv2.HeaderOp_Add{Add: &agentv2.Header{Name: name, Value: value}}}
}

// RemoveHeader returns an operation that removes header name.
func RemoveHeader(name string) *agentv2.HeaderOp {
	return &agentv2.HeaderOp{Operation: &agentv2.HeaderOp_Remove{Remove: name}}
}

// Audit returns audit metadata with tags and rule ids, for
// AgentResponse.Audit; set the other fields on the result.
func Audit(tags []string, ruleIDs ...string) *agentv2.AuditMetadata {
	return &agentv2.AuditMetadata{Tags: tags, RuleIds: ruleIDs}
}
