package agenttest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// eventKind is one of the eight event cases of ProxyToAgent.
type eventKind = agentv2.EventType

const (
	kindRequestHeaders    = agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS
	kindRequestBodyChunk  = agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK
	kindResponseHeaders   = agentv2.EventType_EVENT_TYPE_RESPONSE_HEADERS
	kindResponseBodyChunk = agentv2.EventType_EVENT_TYPE_RESPONSE_BODY_CHUNK
	kindRequestComplete   = agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE
	kindWebSocketFrame    = agentv2.EventType_EVENT_TYPE_WEBSOCKET_FRAME
	kindGuardrail         = agentv2.EventType_EVENT_TYPE_GUARDRAIL_INSPECT
	kindConfigure         = agentv2.EventType_EVENT_TYPE_CONFIGURE
)

// eventField is the name of k's oneof case, e.g. "request_headers".
func eventField(k eventKind) string {
	for _, e := range agentv2.ProxyToAgentEvents {
		if e.Type == k {
			return e.Field
		}
	}
	return k.String()
}

// requestHeaders builds a request-headers event for a GET of path.
func (s *suite) requestHeaders(corr, method, path string, headers ...*agentv2.Header) *agentv2.ProxyToAgent {
	hs := append([]*agentv2.Header{
		{Name: "host", Value: "agenttest.example"},
		{Name: "user-agent", Value: "agenttest/1"},
	}, headers...)
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{
			CorrelationId: corr,
			RequestId:     corr,
			ClientIp:      "127.0.0.1",
			ClientPort:    40000,
			Protocol:      "HTTP/1.1",
			TimestampMs:   uint64(s.cfg.now().UnixMilli()),
		},
		Method:      method,
		Uri:         path,
		HttpVersion: "HTTP/1.1",
		Headers:     hs,
	}}}
}

// event builds an event of kind k for request corr.
func (s *suite) event(k eventKind, corr string, index uint32) *agentv2.ProxyToAgent {
	ms := uint64(s.cfg.now().UnixMilli())
	chunk := func() *agentv2.BodyChunkEvent {
		data := fmt.Appendf(nil, "agenttest chunk %d", index)
		return &agentv2.BodyChunkEvent{
			CorrelationId: corr, ChunkIndex: index, Data: data,
			BytesTransferred: uint64(len(data)), TimestampMs: ms,
		}
	}
	switch k {
	case kindRequestHeaders:
		return s.requestHeaders(corr, "GET", s.cfg.allowPath)
	case kindRequestBodyChunk:
		return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: chunk()}}
	case kindResponseHeaders:
		return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: &agentv2.ResponseHeadersEvent{
			CorrelationId: corr, StatusCode: 200,
			Headers: []*agentv2.Header{{Name: "content-type", Value: "text/plain"}},
		}}}
	case kindResponseBodyChunk:
		return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: chunk()}}
	case kindRequestComplete:
		return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{
			CorrelationId: corr, StatusCode: 200, DurationMs: 3, BytesReceived: 17, BytesSent: 42,
		}}}
	case kindWebSocketFrame:
		return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_WebsocketFrame{WebsocketFrame: &agentv2.WebSocketFrameEvent{
			CorrelationId: corr, ClientToServer: true,
			FrameType: agentv2.WebSocketFrameEvent_FRAME_TYPE_TEXT, Payload: []byte("hello"),
		}}}
	case kindGuardrail:
		return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Guardrail{Guardrail: &agentv2.GuardrailInspectEvent{
			CorrelationId: corr, Content: "What is the capital of France?",
			ContentType: agentv2.GuardrailContentType_GUARDRAIL_CONTENT_TYPE_PROMPT, ContextJson: "{}",
		}}}
	case kindConfigure:
		return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Configure{Configure: &agentv2.ConfigureEvent{
			ConfigJson: "{}", TimestampMs: ms,
		}}}
	}
	panic(fmt.Sprintf("agenttest: unknown event kind %v", k))
}

// sendMatched sends ev and checks that the answer carries ev's correlation
// id. An error the agent reported for the event is an answer too: it is
// returned as the response's Error so callers can decide.
func sendMatched(ctx context.Context, c transport.Conn, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	want, _ := ev.EventCorrelationID()
	resp, err := c.Send(ctx, ev)
	if err != nil {
		if agentwire.IsWireError(err) {
			var e *agentwire.Error
			errors.As(err, &e)
			return &agentv2.AgentResponse{CorrelationId: want, Error: &agentv2.Status{Code: uint32(e.Code()), Message: e.Message()}}, nil
		}
		if errors.Is(err, transport.ErrMismatch) {
			// The transport refuses such an answer and closes the connection.
			return nil, fmt.Errorf("%v event for %q answered with correlation id of another request: %w",
				ev.EventType(), want, err)
		}
		return nil, fmt.Errorf("%v event: %w", ev.EventType(), err)
	}
	if got := resp.GetCorrelationId(); got != want {
		return resp, fmt.Errorf("%v event for %q answered with correlation id %q", ev.EventType(), want, got)
	}
	return resp, nil
}

// eventCheck sends one event of kind k (after the request headers it
// belongs to) and checks it is answered with the right correlation id. A
// kind the agent did not list goes on a connection of its own, so that an
// agent ignoring it leaves the shared connection alone.
func eventCheck(k eventKind) func(ctx context.Context, s *suite) (string, error) {
	return func(ctx context.Context, s *suite) (string, error) {
		var c transport.Conn
		var err error
		if slices.Contains(s.caps.GetSupportedEvents(), k) {
			c, err = s.conn(ctx)
		} else if c, err = s.dial(ctx); err != nil {
			err = fmt.Errorf("connect: %w", err)
		} else {
			defer closeConn(c)
		}
		if err != nil {
			return "", err
		}
		corr := ""
		if k != kindConfigure {
			corr = s.corrID()
			if k != kindRequestHeaders {
				// Events other than request headers belong to a request.
				if _, err := sendMatched(ctx, c, s.event(kindRequestHeaders, corr, 0)); err != nil {
					return "", fmt.Errorf("opening request: %w", err)
				}
			}
		}
		resp, err := sendMatched(ctx, c, s.event(k, corr, 0))
		if err != nil {
			return "", err
		}
		if st := resp.GetError(); st != nil {
			return fmt.Sprintf("answered with an error: %s: %s", agentwire.Code(st.GetCode()), st.GetMessage()), nil
		}
		return describe(resp), nil
	}
}

// describe renders a decision in a few words.
func describe(r *agentv2.AgentResponse) string {
	var b strings.Builder
	switch d := r.GetDecision().(type) {
	case *agentv2.AgentResponse_Allow:
		b.WriteString("allow")
	case *agentv2.AgentResponse_Block:
		fmt.Fprintf(&b, "block %d", d.Block.GetStatus())
	case *agentv2.AgentResponse_Redirect:
		fmt.Fprintf(&b, "redirect %d %s", d.Redirect.GetStatus(), d.Redirect.GetUrl())
	case *agentv2.AgentResponse_Challenge:
		fmt.Fprintf(&b, "challenge %s", d.Challenge.GetChallengeType())
	case nil:
		b.WriteString("no decision (allow)")
	}
	if st := r.GetError(); st != nil {
		fmt.Fprintf(&b, ", error %s: %s", agentwire.Code(st.GetCode()), st.GetMessage())
	}
	if ops := headerOps(r); len(ops) > 0 {
		fmt.Fprintf(&b, ", headers %s", strings.Join(ops, " "))
	}
	if a := r.GetAudit(); a != nil && len(a.GetTags()) > 0 {
		fmt.Fprintf(&b, ", audit tags %s", strings.Join(a.GetTags(), ","))
	}
	if r.GetNeedsMore() {
		b.WriteString(", needs more")
	}
	return b.String()
}

// headerOps renders r's header mutations as "req:set:x-a res:add:x-b".
func headerOps(r *agentv2.AgentResponse) []string {
	var out []string
	add := func(side string, ops []*agentv2.HeaderOp) {
		for _, op := range ops {
			switch o := op.GetOperation().(type) {
			case *agentv2.HeaderOp_Set:
				out = append(out, side+":set:"+o.Set.GetName())
			case *agentv2.HeaderOp_Add:
				out = append(out, side+":add:"+o.Add.GetName())
			case *agentv2.HeaderOp_Remove:
				out = append(out, side+":remove:"+o.Remove)
			}
		}
	}
	add("req", r.GetRequestHeaders())
	add("res", r.GetResponseHeaders())
	return out
}

// setsHeader reports whether r sets or adds header name on either side.
func setsHeader(r *agentv2.AgentResponse, name string) bool {
	for _, ops := range [][]*agentv2.HeaderOp{r.GetRequestHeaders(), r.GetResponseHeaders()} {
		for _, op := range ops {
			if h := op.GetSet(); h != nil && strings.EqualFold(h.GetName(), name) {
				return true
			}
			if h := op.GetAdd(); h != nil && strings.EqualFold(h.GetName(), name) {
				return true
			}
		}
	}
	return false
}
