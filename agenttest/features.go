package agenttest

import agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"

// FeatureNames lists the optional features an agent declared, in a fixed
// order, with the names agentcheck and agentctl print.
func FeatureNames(f *agentv2.AgentFeatures) []string {
	var out []string
	for _, x := range []struct {
		on   bool
		name string
	}{
		{f.GetEchoesEventId(), "echoes-event-id"},
		{f.GetCancellation(), "cancellation"},
		{f.GetFlowControl(), "flow-control"},
		{f.GetHealthReporting(), "health-reporting"},
		{f.GetMetricsExport(), "metrics-export"},
		{f.GetStreamingBody(), "streaming-body"},
		{f.GetWebsocket(), "websocket"},
		{f.GetGuardrails(), "guardrails"},
		{f.GetConfigPush(), "config-push"},
	} {
		if x.on {
			out = append(out, x.name)
		}
	}
	return out
}
