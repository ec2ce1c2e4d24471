package agent

import (
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// The builders allocate a response or header operation with its oneof
// wrapper and inner message in one object; the results are ordinary
// messages.

type allowAlloc struct {
	resp  agentv2.AgentResponse
	wrap  agentv2.AgentResponse_Allow
	allow agentv2.AllowDecision
}

// Allow returns a response that lets the request continue.
func Allow() *agentv2.AgentResponse {
	a := &allowAlloc{}
	a.wrap.Allow = &a.allow
	a.resp.Decision = &a.wrap
	return &a.resp
}

type allowSetAlloc struct {
	allowAlloc
	set headerAlloc
	ops [1]*agentv2.HeaderOp
}

// AllowSetRequestHeader returns a response that lets the request continue
// with request header name set to value, in one allocation: the common
// answer of an agent that tags what it passed.
func AllowSetRequestHeader(name, value string) *agentv2.AgentResponse {
	a := &allowSetAlloc{}
	a.wrap.Allow = &a.allow
	a.resp.Decision = &a.wrap
	a.set.h.Name, a.set.h.Value = name, value
	a.set.set.Set = &a.set.h
	a.set.op.Operation = &a.set.set
	a.ops[0] = &a.set.op
	a.resp.RequestHeaders = a.ops[:]
	return &a.resp
}

type blockAlloc struct {
	resp  agentv2.AgentResponse
	wrap  agentv2.AgentResponse_Block
	block agentv2.BlockDecision
}

// Block returns a response that answers the client with status and body
// (no body if empty).
func Block(status uint32, body string) *agentv2.AgentResponse {
	a := &blockAlloc{}
	a.block.Status = status
	if body != "" {
		a.block.Body = &body
	}
	a.wrap.Block = &a.block
	a.resp.Decision = &a.wrap
	return &a.resp
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

// headerAlloc is a header operation with both wrappers it may use.
type headerAlloc struct {
	op  agentv2.HeaderOp
	set agentv2.HeaderOp_Set
	add agentv2.HeaderOp_Add
	h   agentv2.Header
}

// SetHeader returns an operation that replaces header name with value.
func SetHeader(name, value string) *agentv2.HeaderOp {
	a := &headerAlloc{h: agentv2.Header{Name: name, Value: value}}
	a.set.Set = &a.h
	a.op.Operation = &a.set
	return &a.op
}

// AddHeader returns an operation that adds a value to header name.
func AddHeader(name, value string) *agentv2.HeaderOp {
	a := &headerAlloc{h: agentv2.Header{Name: name, Value: value}}
	a.add.Add = &a.h
	a.op.Operation = &a.add
	return &a.op
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
