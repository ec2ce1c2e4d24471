package refenc

import (
	"testing"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"google.golang.org/protobuf/proto"
)

// TestEditsRoundTrip: body mutations, websocket verdicts and routing
// metadata survive both encodings, with "leave" (data absent) and "drop"
// (data empty) kept apart.
func TestEditsRoundTrip(t *testing.T) {
	t.Parallel()
	answers := []*agentv2.AgentResponse{
		{CorrelationId: "r", RequestBodyMutation: &agentv2.BodyMutation{ChunkIndex: 3, Data: []byte("new")}},
		{CorrelationId: "r", RequestBodyMutation: &agentv2.BodyMutation{ChunkIndex: 1, Data: []byte{}}},
		{CorrelationId: "r", ResponseBodyMutation: &agentv2.BodyMutation{ChunkIndex: 2}},
		{CorrelationId: "r", WebsocketDecision: &agentv2.WebSocketDecision{Action: agentv2.WebSocketDecision_ACTION_DROP}},
		{CorrelationId: "r", WebsocketDecision: &agentv2.WebSocketDecision{Action: agentv2.WebSocketDecision_ACTION_ALLOW}},
		{CorrelationId: "r", WebsocketDecision: &agentv2.WebSocketDecision{Action: agentv2.WebSocketDecision_ACTION_CLOSE, CloseCode: 4000, CloseReason: "bye"}},
		{CorrelationId: "r", RoutingMetadata: map[string]string{"pool": "b", "tier": "gold"}},
	}
	for _, enc := range []Encoding{JSON, MsgPack} {
		for _, a := range answers {
			a.Decision = &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}
			in := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Response{Response: a}}
			frame, err := AppendAgentToProxy(nil, enc, in, 0)
			if err != nil {
				t.Fatal(err)
			}
			var out agentv2.AgentToProxy
			if err := DecodeAgentToProxy(enc, agentv2.FrameType(frame[4]), frame[headerSize:], &out); err != nil {
				t.Fatalf("%v %v: %v", enc, a, err)
			}
			if !proto.Equal(in, &out) {
				t.Errorf("%v: sent %v\ngot %v", enc, in, &out)
			}
			if m := out.GetResponse().GetRequestBodyMutation(); m != nil && (m.Data == nil) != (a.RequestBodyMutation.Data == nil) {
				t.Errorf("%v: leave and drop confused: %v", enc, m)
			}
		}
	}
}

// TestEditsFromReferenceJSON reads what a reference agent writes, and
// refuses what no reference agent could mean.
func TestEditsFromReferenceJSON(t *testing.T) {
	t.Parallel()
	const head = `{"decision":"allow","audit":{"custom":{"correlation_id":"c"}},`
	ok := map[string]*agentv2.AgentResponse{
		`"request_body_mutation":{"data":"","chunk_index":0}}`:   {RequestBodyMutation: &agentv2.BodyMutation{Data: []byte{}}},
		`"request_body_mutation":{"data":null,"chunk_index":4}}`: {RequestBodyMutation: &agentv2.BodyMutation{ChunkIndex: 4}},
		`"response_body_mutation":{"data":"aGk="}}`:              {ResponseBodyMutation: &agentv2.BodyMutation{Data: []byte("hi")}},
		`"websocket_decision":"drop"}`:                           {WebsocketDecision: &agentv2.WebSocketDecision{Action: agentv2.WebSocketDecision_ACTION_DROP}},
		`"websocket_decision":{"close":{"code":1000,"reason":""}}}`: {WebsocketDecision: &agentv2.WebSocketDecision{
			Action: agentv2.WebSocketDecision_ACTION_CLOSE, CloseCode: 1000}},
		`"routing_metadata":{"a":"1"}}`: {RoutingMetadata: map[string]string{"a": "1"}},
	}
	for tail, want := range ok {
		var m agentv2.AgentToProxy
		if err := DecodeAgentToProxy(JSON, 0x20, []byte(head+tail), &m); err != nil {
			t.Fatalf("%s: %v", tail, err)
		}
		want.CorrelationId = "c"
		want.Decision = &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}
		if !proto.Equal(m.GetResponse(), want) {
			t.Errorf("%s: got %v, want %v", tail, m.GetResponse(), want)
		}
	}
	for _, tail := range []string{
		`"websocket_decision":"explode"}`,
		`"websocket_decision":{"close":{"code":70000,"reason":""}}}`,
		`"request_body_mutation":{"data":"not base64!","chunk_index":0}}`,
		`"request_body_mutation":"drop"}`,
		`"routing_metadata":{"a":1}}`,
	} {
		var m agentv2.AgentToProxy
		if err := DecodeAgentToProxy(JSON, 0x20, []byte(head+tail), &m); err == nil {
			t.Errorf("%s: decoded: %v", tail, m.GetResponse())
		}
	}
}
