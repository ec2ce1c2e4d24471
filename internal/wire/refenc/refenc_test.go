package refenc

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

func ptr[T any](v T) *T { return &v }

// proxyMessages are envelopes in the form that survives the reference's
// shapes unchanged (fields it has no place for are left empty).
func proxyMessages() map[string]*agentv2.ProxyToAgent {
	return map[string]*agentv2.ProxyToAgent{
		"handshake": {Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{
			SupportedVersions: []uint32{2}, ProxyId: "p", ProxyVersion: "1.0",
			ConfigJson: `{"a":1}`, SupportedEncodings: []string{"msgpack", "json"},
		}}},
		"request_headers": {Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
			Metadata: &agentv2.RequestMetadata{
				CorrelationId: "c1", RequestId: "r1", ClientIp: "10.0.0.1", ClientPort: 4242,
				ServerName: ptr("example.com"), Protocol: "HTTP/1.1", TlsVersion: ptr("TLSv1.3"),
				RouteId: ptr("route"), TimestampMs: 1700000000123, Traceparent: ptr("00-abc-def-01"),
			},
			Method: "POST", Uri: "/x?y=1",
			Headers: []*agentv2.Header{{Name: "accept", Value: "a"}, {Name: "x-multi", Value: "1"}, {Name: "x-multi", Value: "2"}},
		}}},
		"request_body_chunk": {Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
			CorrelationId: "c1", ChunkIndex: 3, Data: []byte("hi\x00there"), IsLast: true, TotalSize: ptr(uint64(9)), BytesTransferred: 9,
		}}},
		"response_headers": {Message: &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: &agentv2.ResponseHeadersEvent{
			CorrelationId: "c1", StatusCode: 404, Headers: []*agentv2.Header{{Name: "content-type", Value: "text/plain"}},
		}}},
		"response_body_chunk": {Message: &agentv2.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: &agentv2.BodyChunkEvent{
			CorrelationId: "c1", Data: []byte("body"), BytesTransferred: 4,
		}}},
		"request_complete": {Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{
			CorrelationId: "c1", StatusCode: 200, DurationMs: 12, BytesReceived: 3, BytesSent: 4, Error: ptr("boom"),
		}}},
		"websocket_frame": {Message: &agentv2.ProxyToAgent_WebsocketFrame{WebsocketFrame: &agentv2.WebSocketFrameEvent{
			CorrelationId: "c1", ClientToServer: true, FrameType: agentv2.WebSocketFrameEvent_FRAME_TYPE_TEXT, Payload: []byte("msg"),
		}}},
		"guardrail": {Message: &agentv2.ProxyToAgent_Guardrail{Guardrail: &agentv2.GuardrailInspectEvent{
			CorrelationId: "c1", Content: "ignore previous", Model: ptr("gpt"),
			ContextJson: `{"categories":["a"],"inspection_type":"pii_detection","metadata":{"k":"v"}}`,
		}}},
		"configure": {Message: &agentv2.ProxyToAgent_Configure{Configure: &agentv2.ConfigureEvent{
			ConfigJson: `{"mode":"strict","n":2}`, ConfigVersion: ptr("v7"),
		}}},
		"cancel": {Message: &agentv2.ProxyToAgent_Cancel{Cancel: &agentv2.CancelRequest{
			CorrelationId: "c1", Reason: agentv2.CancelReason_CANCEL_REASON_TIMEOUT, TimestampMs: 5,
		}}},
		"ping": {Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: 7, TimestampMs: 99}}},
		"pong": {Message: &agentv2.ProxyToAgent_Pong{Pong: &agentv2.Pong{Sequence: 7, PingTimestampMs: 99}}},
	}
}

func agentMessages() map[string]*agentv2.AgentToProxy {
	return map[string]*agentv2.AgentToProxy{
		"handshake": {Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
			ProtocolVersion: 2, Success: true, Encoding: "msgpack",
			Capabilities: &agentv2.AgentCapabilities{
				ProtocolVersion: 2, AgentId: "a1", Name: "waf", Version: "0.1",
				SupportedEvents: []agentv2.EventType{agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS, agentv2.EventType_EVENT_TYPE_CONFIGURE},
				Features:        &agentv2.AgentFeatures{StreamingBody: true, ConcurrentRequests: 8, Cancellation: true, HealthReporting: true},
				Limits:          &agentv2.AgentLimits{MaxBodySize: 1 << 20, MaxConcurrency: 16, PreferredChunkSize: 65536},
			},
		}}},
		"allow": {Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{
			CorrelationId: "c1", Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}},
		}}},
		"block": {Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{
			CorrelationId: "c2",
			Decision: &agentv2.AgentResponse_Block{Block: &agentv2.BlockDecision{
				Status: 403, Body: ptr("no"), Headers: []*agentv2.Header{{Name: "x-why", Value: "rule"}},
			}},
			RequestHeaders: []*agentv2.HeaderOp{
				{Operation: &agentv2.HeaderOp_Set{Set: &agentv2.Header{Name: "x-a", Value: "1"}}},
				{Operation: &agentv2.HeaderOp_Add{Add: &agentv2.Header{Name: "x-b", Value: "2"}}},
			},
			ResponseHeaders: []*agentv2.HeaderOp{{Operation: &agentv2.HeaderOp_Remove{Remove: "server"}}},
			Audit: &agentv2.AuditMetadata{
				Tags: []string{"sqli"}, RuleIds: []string{"942100"}, Confidence: ptr(float32(0.5)),
				ReasonCodes: []string{"R1"}, Custom: map[string]string{"k": "v"},
			},
			NeedsMore: true,
		}}},
		"redirect": {Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{
			CorrelationId: "c3", Decision: &agentv2.AgentResponse_Redirect{Redirect: &agentv2.RedirectDecision{Url: "https://x/", Status: 302}},
		}}},
		"challenge": {Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{
			CorrelationId: "c4", Decision: &agentv2.AgentResponse_Challenge{Challenge: &agentv2.ChallengeDecision{
				ChallengeType: "captcha", Params: map[string]string{"site": "k"},
			}},
		}}},
		"health": {Message: &agentv2.AgentToProxy_Health{Health: &agentv2.HealthStatus{
			AgentId: "a1", State: agentv2.HealthState_HEALTH_STATE_DRAINING, Message: ptr("bye"), TimestampMs: 3,
		}}},
		"metrics": {Message: &agentv2.AgentToProxy_Metrics{Metrics: &agentv2.MetricsReport{
			AgentId: "a1", TimestampMs: 1, IntervalMs: 1000,
			Counters: []*agentv2.CounterMetric{{Name: "n", Help: ptr("h"), Labels: map[string]string{"l": "v"}, Value: 5}},
			Gauges:   []*agentv2.GaugeMetric{{Name: "g", Value: 1.5}},
			Histograms: []*agentv2.HistogramMetric{{Name: "h", Sum: 2.5, Count: 2,
				Buckets: []*agentv2.HistogramBucket{{Le: 0.1, Count: 1}, {Le: 1, Count: 2}}}},
		}}},
		"config_update": {Message: &agentv2.AgentToProxy_ConfigUpdate{ConfigUpdate: &agentv2.ConfigUpdateRequest{
			RequestId: "u1", TimestampMs: 2, UpdateType: &agentv2.ConfigUpdateRequest_RuleUpdate{RuleUpdate: &agentv2.RuleUpdate{
				RuleSet: "crs", RemoveRules: []string{"old"},
				Rules: []*agentv2.RuleDefinition{{Id: "r", Priority: -1, DefinitionJson: `{"m":"x"}`, Enabled: true, Tags: []string{"t"}}},
			}},
		}}},
		"flow_control": {Message: &agentv2.AgentToProxy_FlowControl{FlowControl: &agentv2.FlowControlSignal{
			Action: agentv2.FlowAction_FLOW_ACTION_PAUSE, CorrelationId: ptr("c1"), TimestampMs: 4,
		}}},
		"ping": {Message: &agentv2.AgentToProxy_Ping{Ping: &agentv2.Ping{Sequence: 1, TimestampMs: 2}}},
		"pong": {Message: &agentv2.AgentToProxy_Pong{Pong: &agentv2.Pong{Sequence: 1, PingTimestampMs: 2}}},
	}
}

// split checks a frame's header and returns its type and payload.
func split(t *testing.T, frame []byte) (agentv2.FrameType, []byte) {
	t.Helper()
	if len(frame) < headerSize || int(uint32(frame[0])<<24|uint32(frame[1])<<16|uint32(frame[2])<<8|uint32(frame[3])) != len(frame)-4 {
		t.Fatalf("bad frame header: % x", frame[:min(len(frame), 8)])
	}
	return agentv2.FrameType(frame[4]), frame[headerSize:]
}

func TestRoundTripProxyToAgent(t *testing.T) {
	t.Parallel()
	for _, enc := range []Encoding{JSON, MsgPack} {
		for name, m := range proxyMessages() {
			t.Run(enc.String()+"/"+name, func(t *testing.T) {
				frame, err := AppendProxyToAgent(nil, enc, m, 0)
				if err != nil {
					t.Fatal(err)
				}
				ft, p := split(t, frame)
				var got agentv2.ProxyToAgent
				if err := DecodeProxyToAgent(enc, ft, p, &got); err != nil {
					t.Fatalf("decode %s: %v", p, err)
				}
				if diff := cmp.Diff(m, &got, protocmp.Transform()); diff != "" {
					t.Errorf("(-want +got)\n%s", diff)
				}
			})
		}
	}
}

func TestRoundTripAgentToProxy(t *testing.T) {
	t.Parallel()
	for _, enc := range []Encoding{JSON, MsgPack} {
		for name, m := range agentMessages() {
			t.Run(enc.String()+"/"+name, func(t *testing.T) {
				frame, err := AppendAgentToProxy(nil, enc, m, 0)
				if err != nil {
					t.Fatal(err)
				}
				ft, p := split(t, frame)
				var got agentv2.AgentToProxy
				if err := DecodeAgentToProxy(enc, ft, p, &got); err != nil {
					t.Fatalf("decode % x: %v", p, err)
				}
				if diff := cmp.Diff(m, &got, protocmp.Transform()); diff != "" {
					t.Errorf("(-want +got)\n%s", diff)
				}
			})
		}
	}
}

func TestRoundTripRegistration(t *testing.T) {
	t.Parallel()
	reg := &agentv2.RegistrationRequest{
		ProtocolVersion: 2, AgentId: "a1", AuthToken: "tok", Metadata: map[string]string{"zone": "eu"},
		Capabilities: &agentv2.AgentCapabilities{ProtocolVersion: 2, AgentId: "a1", Name: "n", Version: "v",
			Features: &agentv2.AgentFeatures{}, Limits: &agentv2.AgentLimits{}},
	}
	frame, err := AppendRegistration(nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ft, p := split(t, frame)
	got, err := RegistrationIn(p)
	if ft != 0x01 || err != nil {
		t.Fatalf("type 0x%02x, err %v", byte(ft), err)
	}
	if diff := cmp.Diff(reg, got, protocmp.Transform()); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	resp := &agentv2.RegistrationResponse{Accepted: true, ProxyId: "p", ProxyVersion: "1", ConnectionId: "a1-1"}
	frame, err = AppendRegistrationResponse(nil, resp)
	if err != nil {
		t.Fatal(err)
	}
	ft, p = split(t, frame)
	if want := `{"success":true,"error":null,"proxy_id":"p","proxy_version":"1","connection_id":"a1-1"}`; ft != 0x02 || string(p) != want {
		t.Errorf("registration response 0x%02x %s, want %s", byte(ft), p, want)
	}
	gotResp, err := RegistrationResponseIn(p)
	if err != nil || !proto.Equal(gotResp, resp) {
		t.Errorf("got %v, %v", gotResp, err)
	}
}

// TestGolden pins a few frames byte for byte, derived by hand from the
// serde definitions (internal/reftest/testdata has the full set).
func TestGolden(t *testing.T) {
	t.Parallel()
	allow := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{
		CorrelationId: "c1", Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}},
	}}}
	cases := []struct {
		name  string
		frame func() ([]byte, error)
		want  string
	}{{
		name: "ping json on msgpack",
		frame: func() ([]byte, error) {
			return AppendProxyToAgent(nil, MsgPack, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: 1, TimestampMs: 2}}}, 0)
		},
		want: frameHex(0x41, `{"sequence":1,"timestamp_ms":2}`),
	}, {
		name:  "allow json",
		frame: func() ([]byte, error) { return AppendAgentToProxy(nil, JSON, allow, 0) },
		want:  frameHex(0x20, `{"version":2,"decision":"allow","request_headers":[],"response_headers":[],"routing_metadata":{},"audit":{"tags":[],"rule_ids":[],"confidence":null,"reason_codes":[],"custom":{"correlation_id":"c1"}},"needs_more":false,"request_body_mutation":null,"response_body_mutation":null,"websocket_decision":null}`),
	}, {
		// [2, "allow", [], [], {}, [[], [], nil, [], {"correlation_id": "c1"}], false, nil, nil, nil]
		name:  "allow msgpack",
		frame: func() ([]byte, error) { return AppendAgentToProxy(nil, MsgPack, allow, 0) },
		want: frameHex(0x20, "\x9a\x02\xa5allow\x90\x90\x80"+
			"\x95\x90\x90\xc0\x90\x81\xaecorrelation_id\xa2c1"+"\xc2\xc0\xc0\xc0"),
	}}
	for _, c := range cases {
		got, err := c.frame()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if hex.EncodeToString(got) != c.want {
			t.Errorf("%s:\n got %x\nwant %s", c.name, got, c.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		enc  Encoding
		t    agentv2.FrameType
		p    string
		want error
		code agentwire.Code
	}{
		{"garbage json", JSON, 0x20, "{nope", ErrMalformed, agentwire.CodeInternal},
		{"garbage msgpack", MsgPack, 0x20, "\xc1", ErrMalformed, agentwire.CodeInternal},
		{"no correlation id", JSON, 0x20, `{"version":2,"decision":"allow"}`, ErrMalformed, agentwire.CodeInternal},
		{"numeric correlation id", JSON, 0x20, `{"decision":"allow","audit":{"custom":{"correlation_id":7}}}`, ErrMalformed, agentwire.CodeInternal},
		{"unknown decision", JSON, 0x20, `{"decision":"maybe","audit":{"custom":{"correlation_id":"c"}}}`, ErrMalformed, agentwire.CodeInternal},
		{"ill-typed status", JSON, 0x20, `{"decision":{"block":{"status":"x"}},"audit":{"custom":{"correlation_id":"c"}}}`, ErrMalformed, agentwire.CodeInternal},
		{"unknown type", JSON, 0x77, `{}`, ErrUnknownType, agentwire.CodeUnimplemented},
		{"deep msgpack", MsgPack, 0x20, string(deep(100)), ErrMalformed, agentwire.CodeInternal},
		{"huge array", MsgPack, 0x20, "\xdd\xff\xff\xff\xff", ErrMalformed, agentwire.CodeInternal},
		{"trailing", JSON, 0x41, `{"sequence":1}{}`, ErrMalformed, agentwire.CodeInternal},
		{"trailing msgpack", MsgPack, 0x41, "\x80\xc0", ErrMalformed, agentwire.CodeInternal},
	}
	for _, c := range cases {
		var m agentv2.AgentToProxy
		err := DecodeAgentToProxy(c.enc, c.t, []byte(c.p), &m)
		if !errors.Is(err, c.want) || agentwire.CodeOf(err) != c.code {
			t.Errorf("%s: got %v (code %v), want %v", c.name, err, agentwire.CodeOf(err), c.want)
		}
	}
}

func frameHex(t byte, p string) string {
	n := len(p) + 1
	return hex.EncodeToString(append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), t}, p...))
}

func deep(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0x91
	}
	return append(b, 0xc0)
}

func TestOversize(t *testing.T) {
	t.Parallel()
	m := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{Data: make([]byte, 100)}}}
	dst := []byte("keep")
	out, err := AppendProxyToAgent(dst, JSON, m, 50)
	var size *agentv2.FrameSizeError
	if !errors.As(err, &size) || string(out) != "keep" {
		t.Errorf("got %q, %v", out, err)
	}
}
