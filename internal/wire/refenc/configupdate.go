package refenc

import (
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// ConfigUpdateRequest is {update_type, request_id, timestamp_ms}, with
// update_type internally tagged ("type"): in MessagePack the tag is the
// first element of the variant's array.

func configUpdateOut(c *agentv2.ConfigUpdateRequest) (*obj, error) {
	var ut *obj
	switch u := c.GetUpdateType().(type) {
	case *agentv2.ConfigUpdateRequest_RequestReload:
		ut = strct(1).add("type", "request_reload")
	case *agentv2.ConfigUpdateRequest_RuleUpdate:
		rules := make([]any, 0, len(u.RuleUpdate.GetRules()))
		for _, d := range u.RuleUpdate.GetRules() {
			rules = append(rules, strct(6).add("id", d.GetId()).add("priority", int64(d.GetPriority())).
				add("definition", jsonValue(d.GetDefinitionJson())).add("enabled", d.GetEnabled()).
				add("description", optStr(d.Description)).add("tags", orNone(d.GetTags())))
		}
		ut = strct(4).add("type", "rule_update").add("rule_set", u.RuleUpdate.GetRuleSet()).
			add("rules", rules).add("remove_rules", orNone(u.RuleUpdate.GetRemoveRules()))
	case *agentv2.ConfigUpdateRequest_ListUpdate:
		ut = strct(4).add("type", "list_update").add("list_id", u.ListUpdate.GetListId()).
			add("add", orNone(u.ListUpdate.GetAdd())).add("remove", orNone(u.ListUpdate.GetRemove()))
	case *agentv2.ConfigUpdateRequest_RestartRequired:
		ut = strct(3).add("type", "restart_required").add("reason", u.RestartRequired.GetReason()).
			add("grace_period_ms", u.RestartRequired.GetGracePeriodMs())
	case *agentv2.ConfigUpdateRequest_ConfigError:
		ut = strct(3).add("type", "config_error").add("error", u.ConfigError.GetError()).
			add("field", optStr(u.ConfigError.Field))
	default:
		return nil, unknown("config update %T", c.GetUpdateType())
	}
	return strct(3).add("update_type", ut).add("request_id", c.GetRequestId()).
		add("timestamp_ms", c.GetTimestampMs()), nil
}

func configUpdateIn(r *rd, v any) *agentv2.ConfigUpdateRequest {
	x := r.rec(v, "config update")
	c := &agentv2.ConfigUpdateRequest{
		RequestId:   r.str(x.get(1, "request_id"), "request_id"),
		TimestampMs: r.u64(x.get(2, "timestamp_ms"), "timestamp_ms"),
	}
	u := r.rec(x.get(0, "update_type"), "update_type")
	switch kind := r.str(u.get(0, "type"), "update_type.type"); kind {
	case "request_reload":
		c.UpdateType = &agentv2.ConfigUpdateRequest_RequestReload{RequestReload: &agentv2.RequestReload{}}
	case "rule_update":
		ru := &agentv2.RuleUpdate{
			RuleSet:     r.str(u.get(1, "rule_set"), "rule_set"),
			RemoveRules: r.strs(u.get(3, "remove_rules"), "remove_rules"),
		}
		for _, e := range r.list(u.get(2, "rules"), "rules") {
			d := r.rec(e, "rule")
			ru.Rules = append(ru.Rules, &agentv2.RuleDefinition{
				Id: r.str(d.get(0, "id"), "id"), Priority: int32(r.i64(d.get(1, "priority"), "priority")),
				DefinitionJson: jsonText(d.get(2, "definition")), Enabled: r.boolean(d.get(3, "enabled"), "enabled"),
				Description: r.optStr(d.get(4, "description"), "description"), Tags: r.strs(d.get(5, "tags"), "tags"),
			})
		}
		c.UpdateType = &agentv2.ConfigUpdateRequest_RuleUpdate{RuleUpdate: ru}
	case "list_update":
		c.UpdateType = &agentv2.ConfigUpdateRequest_ListUpdate{ListUpdate: &agentv2.ListUpdate{
			ListId: r.str(u.get(1, "list_id"), "list_id"),
			Add:    r.strs(u.get(2, "add"), "add"), Remove: r.strs(u.get(3, "remove"), "remove"),
		}}
	case "restart_required":
		c.UpdateType = &agentv2.ConfigUpdateRequest_RestartRequired{RestartRequired: &agentv2.RestartRequired{
			Reason: r.str(u.get(1, "reason"), "reason"), GracePeriodMs: r.u64(u.get(2, "grace_period_ms"), "grace_period_ms"),
		}}
	case "config_error":
		c.UpdateType = &agentv2.ConfigUpdateRequest_ConfigError{ConfigError: &agentv2.ConfigError{
			Error: r.str(u.get(1, "error"), "error"), Field: r.optStr(u.get(2, "field"), "field"),
		}}
	default:
		r.fail("config update type %q", kind)
	}
	return c
}
