package agenttest

import (
	"testing"

	"github.com/stretchr/testify/assert"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// TestEveryEventKindChecked: each event case of the schema has a sample
// event and a conformance check, so an event kind added to the schema
// fails here until the suite covers it.
func TestEveryEventKindChecked(t *testing.T) {
	t.Parallel()
	s := &suite{cfg: newConfig(nil)}
	built := map[agentv2.EventType]bool{}
	for k := kindRequestHeaders; k <= kindConfigure; k++ {
		built[s.event(k, "c", 0).EventType()] = true
	}
	names := map[string]bool{}
	for _, c := range checks {
		names[c.name] = true
	}
	for _, e := range agentv2.ProxyToAgentEvents {
		assert.True(t, built[e.Type], "no sample event of kind %v", e.Type)
		assert.True(t, names["event/"+e.Field], "no check event/%s", e.Field)
	}
	assert.Len(t, built, len(agentv2.ProxyToAgentEvents))
}
