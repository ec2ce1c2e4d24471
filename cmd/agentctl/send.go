package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// sentEvent is one event of a send and what became of it.
type sentEvent struct {
	Event     string          `json:"event"`
	LatencyMS float64         `json:"latency_ms"`
	Response  json.RawMessage `json:"response,omitempty"`
	Error     *eventError     `json:"error,omitempty"`
	Skipped   string          `json:"skipped,omitempty"`

	resp *agentv2.AgentResponse
}

type eventError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// FromAgent is true when the agent reported the error; false when the
	// connection or a timeout produced it.
	FromAgent bool `json:"from_agent"`
}

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send", "ENDPOINT [-method GET] [-uri /path] [-H 'name: value']... [-body data] [flags]", stderr)
	var c common
	c.register(fs)
	var headers headerFlag
	method := fs.String("method", "GET", "request method")
	uri := fs.String("uri", "/", "request URI (path and query)")
	fs.Var(&headers, "H", "request header 'name: value' (repeatable)")
	body := fs.String("body", "", "request body, sent as one chunk after the headers")
	corr := fs.String("correlation-id", "", "correlation id (default: random)")
	clientIP := fs.String("client-ip", "127.0.0.1", "client IP address in the request metadata")
	failOnBlock := fs.Bool("fail-on-block", false, "exit 5 when an agent blocks, redirects or challenges the request")
	endpoint, err := parseEndpoint(fs, args)
	if err != nil {
		return err
	}
	if *corr == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		*corr = "agentctl-" + hex.EncodeToString(b[:])
	}

	conn, err := dial(ctx, endpoint, &c)
	if err != nil {
		return err
	}
	defer closeConn(conn)

	hs := make([]*agentv2.Header, len(headers))
	for i, kv := range headers {
		hs[i] = &agentv2.Header{Name: kv[0], Value: kv[1]}
	}
	now := uint64(time.Now().UnixMilli())
	events := []*agentv2.ProxyToAgent{{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{
			CorrelationId: *corr, RequestId: *corr, ClientIp: *clientIP, Protocol: "HTTP/1.1", TimestampMs: now,
		},
		Method: *method, Uri: *uri, HttpVersion: "HTTP/1.1", Headers: hs,
	}}}}
	if *body != "" {
		size := uint64(len(*body))
		events = append(events, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
			CorrelationId: *corr, Data: []byte(*body), IsLast: true, TotalSize: &size, BytesTransferred: size, TimestampMs: now,
		}}})
	}

	var results []sentEvent
	failed := false
	decided := false // an agent blocked, redirected or challenged
	for _, ev := range events {
		name := strings.ToLower(shortCode(ev.EventType().String(), "EVENT_TYPE_"))
		if decided {
			// A proxy sends nothing more once an agent has decided.
			results = append(results, sentEvent{Event: name, Skipped: "not sent: the request was already decided"})
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, c.timeout)
		start := time.Now()
		resp, err := conn.Send(sctx, ev)
		cancel()
		r := sentEvent{Event: name, LatencyMS: ms(time.Since(start)), resp: resp}
		if err != nil {
			failed = true
			r.Error = &eventError{Code: agentwire.CodeOf(err).String(), Message: errMessage(err), FromAgent: agentwire.IsWireError(err)}
			results = append(results, r)
			if !agentwire.IsWireError(err) {
				break // the connection or the clock failed: nothing more to learn
			}
			continue
		}
		r.Response = rawProto(resp)
		results = append(results, r)
		switch resp.GetDecision().(type) {
		case *agentv2.AgentResponse_Allow:
		case nil:
			// The transport fails such answers; never read one as allow.
			failed = true
		default:
			decided = true
		}
	}

	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Endpoint      string      `json:"endpoint"`
			CorrelationID string      `json:"correlation_id"`
			Events        []sentEvent `json:"events"`
		}{endpoint, *corr, results}); err != nil {
			return err
		}
	} else if err := printDecisions(stdout, *method, *uri, *corr, results); err != nil {
		return err
	}
	if failed {
		return failf(exitFail, "%s: the agent did not decide every event", endpoint)
	}
	if decided && *failOnBlock {
		return failf(exitBlocked, "%s: the request was not allowed", endpoint)
	}
	return nil
}

func errMessage(err error) string {
	var e *agentwire.Error
	if errors.As(err, &e) {
		return e.Message()
	}
	return err.Error()
}

func printDecisions(w io.Writer, method, uri, corr string, results []sentEvent) error {
	fmt.Fprintf(w, "%s %s  (correlation id %s)\n", method, uri, corr)
	for _, r := range results {
		fmt.Fprintf(w, "\n%s\n", r.Event)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		row := func(k, format string, args ...any) {
			fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, args...)...)
		}
		switch {
		case r.Skipped != "":
			row("decision", "%s", r.Skipped)
		case r.Error != nil:
			who := "agent error"
			if !r.Error.FromAgent {
				who = "failed"
			}
			row(who, "%s: %s", r.Error.Code, r.Error.Message)
			row("latency", "%.3fms", r.LatencyMS)
		default:
			describeResponse(row, r.resp)
			row("latency", "%.3fms", r.LatencyMS)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// describeResponse writes a decision's rows.
func describeResponse(row func(k, format string, args ...any), resp *agentv2.AgentResponse) {
	switch d := resp.GetDecision().(type) {
	case nil:
		row("decision", "NONE (not an allow: the agent broke the protocol)")
	case *agentv2.AgentResponse_Allow:
		row("decision", "ALLOW")
	case *agentv2.AgentResponse_Block:
		row("decision", "BLOCK %d", d.Block.GetStatus())
		if d.Block != nil && d.Block.Body != nil {
			row("body", "%q", d.Block.GetBody())
		}
		for _, h := range d.Block.GetHeaders() {
			row("header", "%s: %s", h.GetName(), h.GetValue())
		}
	case *agentv2.AgentResponse_Redirect:
		row("decision", "REDIRECT %d %s", d.Redirect.GetStatus(), d.Redirect.GetUrl())
	case *agentv2.AgentResponse_Challenge:
		row("decision", "CHALLENGE %s", d.Challenge.GetChallengeType())
		keys := make([]string, 0, len(d.Challenge.GetParams()))
		for k := range d.Challenge.GetParams() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			row("param", "%s=%s", k, d.Challenge.GetParams()[k])
		}
	}
	for _, op := range resp.GetRequestHeaders() {
		row("request header", "%s", headerOp(op))
	}
	for _, op := range resp.GetResponseHeaders() {
		row("response header", "%s", headerOp(op))
	}
	if a := resp.GetAudit(); a != nil {
		var parts []string
		if len(a.GetTags()) > 0 {
			parts = append(parts, "tags "+strings.Join(a.GetTags(), ","))
		}
		if len(a.GetRuleIds()) > 0 {
			parts = append(parts, "rules "+strings.Join(a.GetRuleIds(), ","))
		}
		if len(a.GetReasonCodes()) > 0 {
			parts = append(parts, "reasons "+strings.Join(a.GetReasonCodes(), ","))
		}
		if a.Confidence != nil {
			parts = append(parts, fmt.Sprintf("confidence %.2f", a.GetConfidence()))
		}
		if len(parts) > 0 {
			row("audit", "%s", strings.Join(parts, "; "))
		}
	}
	if resp.GetNeedsMore() {
		row("needs more", "yes: the agent wants more of the body before deciding")
	}
	if resp.ProcessingTimeMs != nil {
		row("agent time", "%dms", resp.GetProcessingTimeMs())
	}
}

func headerOp(op *agentv2.HeaderOp) string {
	switch o := op.GetOperation().(type) {
	case *agentv2.HeaderOp_Set:
		return fmt.Sprintf("set %s: %s", o.Set.GetName(), o.Set.GetValue())
	case *agentv2.HeaderOp_Add:
		return fmt.Sprintf("add %s: %s", o.Add.GetName(), o.Add.GetValue())
	case *agentv2.HeaderOp_Remove:
		return "remove " + o.Remove
	}
	return "(empty operation)"
}
