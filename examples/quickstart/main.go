// Command quickstart shows agentwire end to end in one process, with no
// flags: it starts the example WAF agent on a Unix socket and on gRPC, builds
// a pool with both, sends a handful of realistic requests through it, and
// prints every decision and the pool's statistics.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// step is one event the demo sends.
type step struct {
	agentID string
	request string // what a person would see in an access log
	event   *agentv2.ProxyToAgent
}

func run(ctx context.Context, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	tr, err := setupTracing(ctx, out)
	if err != nil {
		return err
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = tr.done(sctx, out)
	}()

	// 1. The agent: the example WAF policy, served on a Unix socket and on
	// gRPC (both loopback-only).
	srv, err := agent.NewServer(&waf.Handler{},
		append([]agent.Option{agent.WithAgentID("waf"), agent.WithName("example-waf")}, tr.agentOpts...)...)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "agentwire-quickstart")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "waf.sock")
	uln, err := srv.ListenUnix(sock)
	if err != nil {
		return err
	}
	serveDone := make(chan struct{})
	go func() { defer close(serveDone); _ = srv.ServeUnix(ctx, uln) }()

	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	gs := grpc.NewServer(agent.GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	grpcDone := make(chan struct{})
	go func() { defer close(grpcDone); _ = gs.Serve(gln) }()
	defer func() {
		gs.Stop()
		srv.Close()
		<-grpcDone
		<-serveDone
	}()

	// 2. The proxy side: one pool, the same agent reached two ways.
	p, err := pool.New(append([]pool.Option{pool.WithConnections(2)}, tr.poolOpts...)...)
	if err != nil {
		return err
	}
	defer p.Close()
	endpoints := map[string]string{
		"waf-uds":  "unix://" + sock,
		"waf-grpc": "grpc://" + gln.Addr().String(),
	}
	for _, id := range []string{"waf-uds", "waf-grpc"} {
		if err := p.AddAgent(ctx, id, endpoints[id]); err != nil {
			return fmt.Errorf("add agent %s: %w", id, err)
		}
	}
	// AddAgent returns once the first connection is up; give the others a
	// moment so the statistics below show the full pool.
	waitReady(ctx, p, 2)
	fmt.Fprintf(out, "agentwire quickstart: agent %q on %s and %s\n\n", "waf", endpoints["waf-uds"], endpoints["waf-grpc"])

	// 3. Realistic traffic through the pool.
	steps := []step{
		{"waf-uds", "GET /index.html", requestHeaders("req-1", "GET", "/index.html", "Mozilla/5.0")},
		{"waf-uds", "GET /admin/users", requestHeaders("req-2", "GET", "/admin/users", "Mozilla/5.0")},
		{"waf-grpc", "GET /old-login", requestHeaders("req-3", "GET", "/old-login", "Mozilla/5.0")},
		{"waf-grpc", "GET /search?q=1' or 1=1", requestHeaders("req-4", "GET", "/search?q=1' or 1=1", "curl/8.5")},
		{"waf-uds", "GET /pricing (bot)", requestHeaders("req-5", "GET", "/pricing", "scrapy-bot/2.0")},
		{"waf-grpc", "POST /upload", requestHeaders("req-6", "POST", "/upload", "Mozilla/5.0")},
		{"waf-grpc", "  body chunk 0", bodyChunk("req-6", 0, "name=report.pdf&", false)},
		{"waf-grpc", "  body chunk 1", bodyChunk("req-6", 1, "comment=looks good", true)},
		{"waf-grpc", "  response 200", responseHeaders("req-6", 200)},
		{"waf-grpc", "  request complete", requestComplete("req-6", 200)},
		{"waf-uds", "POST /comment", requestHeaders("req-7", "POST", "/comment", "Mozilla/5.0")},
		{"waf-uds", "  body chunk 0", bodyChunk("req-7", 0, "text=<script>alert(1)</script>", true)},
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tREQUEST\tEVENT\tDECISION\tDETAILS\tLATENCY")
	// One span per proxied request, started with its headers and ended
	// after its request-complete: the pool's spans of its events and the
	// agent's become its children when tracing is on.
	requests := map[string]context.Context{}
	for _, s := range steps {
		corr := correlationOf(s.event)
		if s.event.GetRequestHeaders() != nil {
			requests[corr], _ = tr.tracer.Start(ctx, s.request, trace.WithSpanKind(trace.SpanKindServer))
		}
		start := time.Now()
		resp, err := p.Send(requests[corr], s.agentID, s.event)
		elapsed := time.Since(start)
		if s.event.GetRequestComplete() != nil {
			trace.SpanFromContext(requests[corr]).End()
		}
		decision, details := describe(resp, err)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.agentID, s.request, eventName(s.event), decision, details, elapsed.Round(time.Microsecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// A proxy ends every exchange with request-complete: it releases the
	// request's affinity in the pool and the agent's per-request state.
	completed := map[string]bool{"req-6": true}
	for _, s := range steps {
		corr := correlationOf(s.event)
		if s.event.GetRequestHeaders() == nil || completed[corr] {
			continue
		}
		completed[corr] = true
		_, err := p.Send(requests[corr], s.agentID, requestComplete(corr, 200))
		trace.SpanFromContext(requests[corr]).End()
		if err != nil {
			return fmt.Errorf("request complete %s: %w", corr, err)
		}
	}

	// 4. What the pool saw.
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL AGENT\tENDPOINT\tCONNS READY\tREQUESTS\tERRORS\tIN FLIGHT\tBREAKER")
	for _, st := range p.Stats() {
		ready := 0
		for _, c := range st.Conns {
			if c.State.String() == "ready" {
				ready++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%d\t%s\n", st.ID, st.Endpoint, ready, len(st.Conns), st.Requests, st.Errors, st.InFlight, st.Breaker)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	return p.Shutdown(sctx)
}

func requestHeaders(corr, method, uri, userAgent string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{
			CorrelationId: corr, RequestId: corr, ClientIp: "203.0.113.7", ClientPort: 51234,
			Protocol: "HTTP/1.1", TimestampMs: uint64(time.Now().UnixMilli()),
		},
		Method: method, Uri: uri, HttpVersion: "HTTP/1.1",
		Headers: []*agentv2.Header{
			{Name: "host", Value: "shop.example"},
			{Name: "user-agent", Value: userAgent},
			{Name: "accept", Value: "text/html"},
		},
	}}}
}

func bodyChunk(corr string, index uint32, data string, last bool) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: corr, ChunkIndex: index, Data: []byte(data), IsLast: last,
	}}}
}

func responseHeaders(corr string, status uint32) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: &agentv2.ResponseHeadersEvent{
		CorrelationId: corr, StatusCode: status,
		Headers: []*agentv2.Header{{Name: "content-type", Value: "application/json"}},
	}}}
}

func requestComplete(corr string, status uint32) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{
		CorrelationId: corr, StatusCode: status, DurationMs: 12,
	}}}
}

// waitReady waits (briefly) until every agent has n ready connections.
func waitReady(ctx context.Context, p *pool.Pool, n int) {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		all := true
		for _, st := range p.Stats() {
			ready := 0
			for _, c := range st.Conns {
				if c.State.String() == "ready" {
					ready++
				}
			}
			all = all && ready >= n
		}
		if all {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func correlationOf(ev *agentv2.ProxyToAgent) string {
	corr, _ := ev.EventCorrelationID()
	return corr
}

func eventName(ev *agentv2.ProxyToAgent) string {
	return strings.ReplaceAll(agentv2.ProxyToAgentFrameName(ev.FrameType()), "_", " ")
}

// describe renders a decision the way an operator reads it.
func describe(resp *agentv2.AgentResponse, err error) (string, string) {
	if err != nil {
		return "ERROR", err.Error()
	}
	var details []string
	decision := "allow"
	switch {
	case resp.GetBlock() != nil:
		decision = fmt.Sprintf("block %d", resp.GetBlock().GetStatus())
	case resp.GetRedirect() != nil:
		decision = fmt.Sprintf("redirect %d", resp.GetRedirect().GetStatus())
		details = append(details, "to "+resp.GetRedirect().GetUrl())
	case resp.GetChallenge() != nil:
		decision = "challenge"
		details = append(details, resp.GetChallenge().GetChallengeType())
	}
	for _, op := range resp.GetRequestHeaders() {
		details = append(details, "req "+describeOp(op))
	}
	for _, op := range resp.GetResponseHeaders() {
		details = append(details, "resp "+describeOp(op))
	}
	if a := resp.GetAudit(); a != nil {
		details = append(details, "audit "+strings.Join(append(a.GetTags(), a.GetRuleIds()...), ","))
	}
	if len(details) == 0 {
		details = append(details, "-")
	}
	return decision, strings.Join(details, "; ")
}

func describeOp(op *agentv2.HeaderOp) string {
	switch {
	case op.GetSet() != nil:
		return "set " + op.GetSet().GetName() + ": " + op.GetSet().GetValue()
	case op.GetAdd() != nil:
		return "add " + op.GetAdd().GetName() + ": " + op.GetAdd().GetValue()
	default:
		return "remove " + op.GetRemove()
	}
}
