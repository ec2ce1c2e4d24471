package refenc

import (
	"slices"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// The reference's AgentResponse: a struct (positional in MessagePack) of
// version, decision, request_headers, response_headers, routing_metadata,
// audit, needs_more, request_body_mutation, response_body_mutation,
// websocket_decision. It names the request it answers only in
// audit.custom["correlation_id"], which uds_server adds to every answer.

// CorrelationKey is the audit.custom key carrying a response's request.
const CorrelationKey = "correlation_id"

func responseOut(a *agentv2.AgentResponse) *obj {
	audit := a.GetAudit()
	custom := mp(len(audit.GetCustom()) + 1)
	for _, k := range sortedKeys(audit.GetCustom()) {
		if k != CorrelationKey {
			custom.add(k, audit.GetCustom()[k])
		}
	}
	custom.add(CorrelationKey, a.GetCorrelationId())
	var conf any
	if audit != nil && audit.Confidence != nil {
		conf = f32(*audit.Confidence)
	}
	au := strct(5).
		add("tags", orNone(audit.GetTags())).
		add("rule_ids", orNone(audit.GetRuleIds())).
		add("confidence", conf).
		add("reason_codes", orNone(audit.GetReasonCodes())).
		add("custom", custom)
	return strct(10).
		add("version", uint64(2)).
		add("decision", decisionOut(a)).
		add("request_headers", headerOpsOut(a.GetRequestHeaders())).
		add("response_headers", headerOpsOut(a.GetResponseHeaders())).
		add("routing_metadata", routingOut(a.GetRoutingMetadata())).
		add("audit", au).
		add("needs_more", a.GetNeedsMore()).
		add("request_body_mutation", mutationOut(a.GetRequestBodyMutation())).
		add("response_body_mutation", mutationOut(a.GetResponseBodyMutation())).
		add("websocket_decision", wsDecisionOut(a.GetWebsocketDecision()))
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// decisionOut is serde's externally tagged Decision: "allow", or a
// one-key map to the variant's struct. An agent error, which the
// reference cannot say, goes out as a block with status 500: fail closed.
func decisionOut(a *agentv2.AgentResponse) any {
	if e := a.GetError(); e != nil {
		msg := e.GetMessage()
		return mp(1).add("block", strct(3).add("status", uint64(500)).add("body", msg).add("headers", nil))
	}
	switch d := a.GetDecision().(type) {
	case *agentv2.AgentResponse_Block:
		var hs any
		if len(d.Block.GetHeaders()) > 0 {
			m := mp(len(d.Block.GetHeaders()))
			for _, h := range d.Block.GetHeaders() {
				m.add(h.GetName(), h.GetValue())
			}
			hs = m
		}
		return mp(1).add("block", strct(3).
			add("status", uint64(d.Block.GetStatus())).
			add("body", optStr(d.Block.Body)).
			add("headers", hs))
	case *agentv2.AgentResponse_Redirect:
		return mp(1).add("redirect", strct(2).
			add("url", d.Redirect.GetUrl()).
			add("status", uint64(d.Redirect.GetStatus())))
	case *agentv2.AgentResponse_Challenge:
		params := mp(len(d.Challenge.GetParams()))
		for _, k := range sortedKeys(d.Challenge.GetParams()) {
			params.add(k, d.Challenge.GetParams()[k])
		}
		return mp(1).add("challenge", strct(2).
			add("challenge_type", d.Challenge.GetChallengeType()).
			add("params", params))
	}
	return "allow"
}

func headerOpsOut(ops []*agentv2.HeaderOp) []any {
	out := make([]any, 0, len(ops))
	for _, op := range ops {
		switch o := op.GetOperation().(type) {
		case *agentv2.HeaderOp_Set:
			out = append(out, mp(1).add("set", strct(2).add("name", o.Set.GetName()).add("value", o.Set.GetValue())))
		case *agentv2.HeaderOp_Add:
			out = append(out, mp(1).add("add", strct(2).add("name", o.Add.GetName()).add("value", o.Add.GetValue())))
		case *agentv2.HeaderOp_Remove:
			out = append(out, mp(1).add("remove", strct(1).add("name", o.Remove)))
		}
	}
	return out
}

// responseIn reads an AgentResponse. A response without a string
// correlation id cannot be tied to a request and is malformed. Its edits
// (body mutations, websocket verdict) are checked against the event they
// answer by the proxy's session (transport.ErrMisplacedEdit).
func responseIn(r *rd, v any) *agentv2.AgentResponse {
	x := r.rec(v, "agent response")
	a := &agentv2.AgentResponse{NeedsMore: r.boolean(x.get(6, "needs_more"), "needs_more")}
	decisionIn(r, x.get(1, "decision"), a)
	a.RequestHeaders = headerOpsIn(r, x.get(2, "request_headers"))
	a.ResponseHeaders = headerOpsIn(r, x.get(3, "response_headers"))
	au := r.rec(x.get(5, "audit"), "audit")
	custom := r.dict(au.get(4, "custom"), "audit.custom")
	corr, ok := custom[CorrelationKey].(string)
	if !ok {
		r.fail("audit.custom.%s: missing, so the response answers no request", CorrelationKey)
	}
	a.CorrelationId = corr
	audit := &agentv2.AuditMetadata{
		Tags:        r.strs(au.get(0, "tags"), "audit.tags"),
		RuleIds:     r.strs(au.get(1, "rule_ids"), "audit.rule_ids"),
		ReasonCodes: r.strs(au.get(3, "reason_codes"), "audit.reason_codes"),
	}
	if c := au.get(2, "confidence"); c != nil {
		f := float32(r.float(c, "audit.confidence"))
		audit.Confidence = &f
	}
	for k, val := range custom {
		if k == CorrelationKey {
			continue
		}
		if audit.Custom == nil {
			audit.Custom = make(map[string]string, len(custom))
		}
		if s, ok := val.(string); ok {
			audit.Custom[k] = s
		} else {
			audit.Custom[k] = jsonText(val)
		}
	}
	if audit.Custom != nil || audit.Tags != nil || audit.RuleIds != nil || audit.ReasonCodes != nil || audit.Confidence != nil {
		a.Audit = audit
	}
	a.RoutingMetadata = r.strMap(x.get(4, "routing_metadata"), "routing_metadata")
	a.RequestBodyMutation = mutationIn(r, x.get(7, "request_body_mutation"), "request_body_mutation")
	a.ResponseBodyMutation = mutationIn(r, x.get(8, "response_body_mutation"), "response_body_mutation")
	a.WebsocketDecision = wsDecisionIn(r, x.get(9, "websocket_decision"))
	return a
}

// variant reads an externally tagged enum value: a bare name for a unit
// variant, else a one-key map.
func variant(r *rd, v any, what string) (string, any) {
	switch v := v.(type) {
	case string:
		return v, nil
	case map[string]any:
		if len(v) == 1 {
			for k, body := range v {
				return k, body
			}
		}
	}
	r.fail("%s: want a variant, got %v", what, v)
	return "", nil
}

func decisionIn(r *rd, v any, a *agentv2.AgentResponse) {
	name, body := variant(r, v, "decision")
	x := r.rec(body, "decision."+name)
	switch name {
	case "allow":
		a.Decision = &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}
	case "block":
		b := &agentv2.BlockDecision{
			Status: r.u32(x.get(0, "status"), "block.status"),
			Body:   r.optStr(x.get(1, "body"), "block.body"),
		}
		hs := r.strMap(x.get(2, "headers"), "block.headers")
		for _, k := range sortedKeys(hs) {
			b.Headers = append(b.Headers, &agentv2.Header{Name: k, Value: hs[k]})
		}
		a.Decision = &agentv2.AgentResponse_Block{Block: b}
	case "redirect":
		a.Decision = &agentv2.AgentResponse_Redirect{Redirect: &agentv2.RedirectDecision{
			Url:    r.str(x.get(0, "url"), "redirect.url"),
			Status: r.u32(x.get(1, "status"), "redirect.status"),
		}}
	case "challenge":
		a.Decision = &agentv2.AgentResponse_Challenge{Challenge: &agentv2.ChallengeDecision{
			ChallengeType: r.str(x.get(0, "challenge_type"), "challenge.challenge_type"),
			Params:        r.strMap(x.get(1, "params"), "challenge.params"),
		}}
	default:
		r.fail("decision %q", name)
	}
}

func headerOpsIn(r *rd, v any) []*agentv2.HeaderOp {
	var ops []*agentv2.HeaderOp
	for _, e := range r.list(v, "header ops") {
		name, body := variant(r, e, "header op")
		x := r.rec(body, "header op")
		h := &agentv2.Header{Name: r.str(x.get(0, "name"), "header.name"), Value: r.str(x.get(1, "value"), "header.value")}
		switch name {
		case "set":
			ops = append(ops, &agentv2.HeaderOp{Operation: &agentv2.HeaderOp_Set{Set: h}})
		case "add":
			ops = append(ops, &agentv2.HeaderOp{Operation: &agentv2.HeaderOp_Add{Add: h}})
		case "remove":
			ops = append(ops, &agentv2.HeaderOp{Operation: &agentv2.HeaderOp_Remove{Remove: h.Name}})
		default:
			r.fail("header op %q", name)
		}
	}
	return ops
}
