package httpguard_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/httpguard"
)

// TestWAFThroughReverseProxy puts the example WAF agent, over a Unix
// socket and over gRPC, in front of httputil.ReverseProxy and a real
// upstream: every kind of decision reaches the client as the agent meant.
func TestWAFThroughReverseProxy(t *testing.T) {
	t.Parallel()
	for _, tr := range []struct {
		name  string
		start func(*testing.T, agent.Handler, ...agent.Option) string
	}{{"unix", startUnix}, {"grpc", startGRPC}} {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			h := &waf.Handler{}
			p := newPool(t, map[string]string{"waf": tr.start(t, h)})
			var logs logBuffer
			g, err := httpguard.New(p, httpguard.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
				httpguard.WithRoute("/", httpguard.WithAgent("waf",
					httpguard.WithEvents(httpguard.RequestBody|httpguard.ResponseHeaders|httpguard.RequestComplete))))
			require.NoError(t, err)
			defer func() { assert.NoError(t, g.Close(context.Background())) }()
			up := newUpstream(t)
			base := serveProxy(t, g, up.URL)
			c := newClient(t)

			ok := do(t, c, "POST", base+"/hello", strings.NewReader("a clean body"))
			assert.Equal(t, http.StatusOK, ok.status)
			assert.Equal(t, "a clean body", ok.body, "the body reaches the upstream and back")
			assert.Equal(t, "pass", ok.header.Get("Echo-X-Waf"), "request mutation before the upstream")
			assert.Equal(t, "agentwire", ok.header.Get("X-Waf-Agent"), "response mutation before the client")

			admin := do(t, c, "GET", base+"/admin/users", nil)
			assert.Equal(t, http.StatusForbidden, admin.status)
			assert.Equal(t, "forbidden\n", admin.body)
			assert.Contains(t, logs.String(), "admin-blocked", "audit logged")
			assert.Contains(t, logs.String(), "decided_by=waf")

			unclean := do(t, c, "GET", base+"/x/../admin", nil)
			assert.NotEqual(t, http.StatusOK, unclean.status, "an unclean path is guarded too")

			redirect := do(t, c, "GET", base+"/old-login", nil)
			assert.Equal(t, http.StatusMovedPermanently, redirect.status)
			assert.Equal(t, "/login", redirect.header.Get("Location"))

			bot := do(t, c, "GET", base+"/hello", nil, "User-Agent", "evilbot/1.0")
			assert.Equal(t, http.StatusForbidden, bot.status)
			assert.Equal(t, "captcha", bot.header.Get("X-Agentwire-Challenge"))

			xss := do(t, c, "POST", base+"/comment", strings.NewReader("hi <script>alert(1)</script>"))
			assert.Equal(t, http.StatusForbidden, xss.status, "a block on the body replaces the upstream's answer")
			assert.Equal(t, "request blocked\n", xss.body)
			assert.LessOrEqual(t, up.hits.Load(), int64(2), "only the clean request and the body-blocked one reach the upstream")
		})
	}
}

// TestChainSecondBlocksAfterFirstMutated: the first agent mutates the
// request and response headers, the second blocks: the block wins, the
// upstream is not called, the third agent is not asked, and the audit of
// both is merged.
func TestChainSecondBlocksAfterFirstMutated(t *testing.T) {
	t.Parallel()
	first := &script{headers: func(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
		r := agent.AllowSetRequestHeader("X-User", "alice")
		r.ResponseHeaders = append(r.ResponseHeaders, agent.SetHeader("X-First", "1"))
		r.Audit = agent.Audit([]string{"authenticated"})
		return r, nil
	}}
	second := &script{headers: func(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
		r := agent.Block(http.StatusUnauthorized, "no\n")
		r.Audit = agent.Audit([]string{"denied"}, "rule-2")
		return r, nil
	}}
	third := &script{}
	p := newPool(t, map[string]string{"first": startUnix(t, first), "second": startUnix(t, second), "third": startUnix(t, third)})
	var logs logBuffer
	g := newGuard(t, p, httpguard.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		httpguard.WithRoute("/", httpguard.WithAgent("first"), httpguard.WithAgent("second"), httpguard.WithAgent("third")))
	up := newUpstream(t)
	res := do(t, newClient(t), "GET", serveProxy(t, g, up.URL)+"/x", nil)
	assert.Equal(t, http.StatusUnauthorized, res.status)
	assert.Equal(t, "no\n", res.body)
	assert.Empty(t, res.header.Get("X-First"), "mutations do not apply to the guard's own answer")
	assert.Zero(t, up.hits.Load())
	assert.Zero(t, third.requests(), "later agents are not asked")
	second.mu.Lock()
	for _, h := range second.seen[0].GetHeaders() {
		assert.NotEqual(t, "X-User", h.GetName(), "every agent sees the request as the client sent it")
	}
	second.mu.Unlock()
	out := logs.String()
	assert.Contains(t, out, "authenticated")
	assert.Contains(t, out, "denied")
	assert.Contains(t, out, "decided_by=second")
}

// TestChainMutationsInOrder: mutations of allowing agents apply in chain
// order, and the audit reaches next through the request context.
func TestChainMutationsInOrder(t *testing.T) {
	t.Parallel()
	set := func(v, tag string) *script {
		return &script{headers: func(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
			r := agent.AllowSetRequestHeader("X-Order", v)
			r.RequestHeaders = append(r.RequestHeaders, agent.AddHeader("X-Trail", v))
			r.ResponseHeaders = append(r.ResponseHeaders, agent.SetHeader("X-Last", v))
			r.Audit = &agentv2.AuditMetadata{Tags: []string{tag}, Custom: map[string]string{"k": v}}
			return r, nil
		}}
	}
	p := newPool(t, map[string]string{"a": startUnix(t, set("a", "ta")), "b": startGRPC(t, set("b", "tb"))})
	g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("a"), httpguard.WithAgent("b")))
	base := serve(t, g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := httpguard.AuditFrom(r.Context())
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Got-Order", r.Header.Get("X-Order"))
		w.Header().Set("Got-Trail", strings.Join(r.Header.Values("X-Trail"), ","))
		w.Header().Set("Got-Tags", strings.Join(a.Tags, ","))
		w.Header().Set("Got-Custom", a.Custom["k"])
	})))
	res := do(t, newClient(t), "GET", base+"/", nil)
	assert.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, "b", res.header.Get("Got-Order"), "the later set wins")
	assert.Equal(t, "a,b", res.header.Get("Got-Trail"))
	assert.Equal(t, "b", res.header.Get("X-Last"))
	assert.Equal(t, "ta,tb", res.header.Get("Got-Tags"))
	assert.Equal(t, "b", res.header.Get("Got-Custom"))
}

// TestParallelBlockCancelsNeighbour: in a parallel group, a block cancels
// the slow neighbour with CANCEL_REASON_BLOCKED_BY_AGENT without waiting
// for it.
func TestParallelBlockCancelsNeighbour(t *testing.T) {
	t.Parallel()
	slow := &peer{decide: func(ctx context.Context, _ *agentv2.ProxyToAgent) *agentv2.AgentResponse {
		<-ctx.Done() // until the guard cancels
		return nil
	}}
	blocker := &script{headers: func(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
		return agent.Block(http.StatusForbidden, "blocked\n"), nil
	}}
	p := newPool(t, map[string]string{"slow": startPeer(t, slow), "blocker": startUnix(t, blocker)})
	g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("slow", httpguard.WithTimeout(10*time.Second)),
		httpguard.WithAgent("blocker", httpguard.Parallel())))
	start := time.Now()
	res := do(t, newClient(t), "GET", serve(t, g.Middleware(http.NotFoundHandler()))+"/", nil)
	assert.Equal(t, http.StatusForbidden, res.status)
	assert.Less(t, time.Since(start), 5*time.Second)
	c := slow.nextCancel(t)
	assert.Equal(t, agentv2.CancelReason_CANCEL_REASON_BLOCKED_BY_AGENT, c.GetReason())
	assert.Equal(t, "blocker", c.GetBlockingAgentId())
}

// TestBlockCancelsEarlierAgents: a block ends the request at the agents
// before it in the chain with CANCEL_REASON_BLOCKED_BY_AGENT, naming the
// blocking agent.
func TestBlockCancelsEarlierAgents(t *testing.T) {
	t.Parallel()
	first := &peer{}
	blocker := &script{headers: func(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
		return agent.Block(http.StatusForbidden, "blocked\n"), nil
	}}
	p := newPool(t, map[string]string{"first": startPeer(t, first), "waf": startUnix(t, blocker)})
	g := newGuard(t, p, httpguard.WithRoute("/", httpguard.WithAgent("first"), httpguard.WithAgent("waf")))
	res := do(t, newClient(t), "GET", serve(t, g.Middleware(http.NotFoundHandler()))+"/", nil)
	assert.Equal(t, http.StatusForbidden, res.status)
	c := first.nextCancel(t)
	assert.Equal(t, agentv2.CancelReason_CANCEL_REASON_BLOCKED_BY_AGENT, c.GetReason())
	assert.Equal(t, "waf", c.GetBlockingAgentId())
}

// TestUnmatchedGoesThrough: a request no route matches is not guarded.
func TestUnmatchedGoesThrough(t *testing.T) {
	t.Parallel()
	s := &script{}
	p := newPool(t, map[string]string{"a": startUnix(t, s)})
	g := newGuard(t, p, httpguard.WithRoute("/api/", httpguard.WithAgent("a")),
		httpguard.WithRouteFunc("admin", func(r *http.Request) bool { return r.Header.Get("X-Admin") != "" },
			httpguard.WithAgent("a")))
	base := serve(t, g.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	c := newClient(t)
	assert.Equal(t, http.StatusOK, do(t, c, "GET", base+"/static/x", nil).status)
	assert.Zero(t, s.requests())
	do(t, c, "GET", base+"/api/v1", nil)
	do(t, c, "GET", base+"/static/x", nil, "X-Admin", "1")
	assert.Equal(t, 2, s.requests())
	s.mu.Lock()
	assert.Equal(t, "/api/", s.seen[0].GetMetadata().GetRouteId())
	assert.Equal(t, "admin", s.seen[1].GetMetadata().GetRouteId())
	s.mu.Unlock()
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	p := newPool(t, nil)
	for i, opts := range [][]httpguard.Option{
		nil,
		{httpguard.WithRoute("/")},
		{httpguard.WithRoute("/{x", httpguard.WithAgent("a"))},
		{httpguard.WithRoute("/", httpguard.WithAgent("a", httpguard.WithTimeout(0)))},
		{httpguard.WithRoute("/", httpguard.WithAgent("a", httpguard.FailClosed(42)))},
		{httpguard.WithRoute("/", httpguard.WithAgent("a")), httpguard.WithRoute("/", httpguard.WithAgent("a"))},
	} {
		_, err := httpguard.New(p, opts...)
		assert.Error(t, err, "%d", i)
	}
}

// TestResponseDecisions: a block on the response headers replaces the
// upstream's response; a custom challenge responder answers challenges;
// invalid header mutations are dropped.
func TestResponseDecisions(t *testing.T) {
	t.Parallel()
	a := &script{
		headers: func(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
			if strings.HasPrefix(ev.GetUri(), "/challenge") {
				return agent.Challenge("js", map[string]string{"nonce": "n1"}), nil
			}
			r := agent.AllowSetRequestHeader("Bad Name", "x")
			r.RequestHeaders = append(r.RequestHeaders, agent.SetHeader("X-Bad-Value", "a\nb"), agent.SetHeader("X-Good", "1"))
			return r, nil
		},
		rspHdrs: func(_ context.Context, ev *agentv2.ResponseHeadersEvent) (*agentv2.AgentResponse, error) {
			for _, h := range ev.GetHeaders() {
				if h.GetName() == "Echo-X-Secret" {
					r := agent.Block(http.StatusBadGateway, "")
					r.GetBlock().Headers = []*agentv2.Header{{Name: "X-Reason", Value: "leak"}}
					return r, nil
				}
			}
			return agent.Allow(), nil
		},
	}
	p := newPool(t, map[string]string{"a": startUnix(t, a)})
	g := newGuard(t, p,
		httpguard.WithChallenge(func(w http.ResponseWriter, _ *http.Request, c *agentv2.ChallengeDecision) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(c.GetChallengeType() + ":" + c.GetParams()["nonce"]))
		}),
		httpguard.WithRoute("/", httpguard.WithAgent("a", httpguard.WithEvents(httpguard.ResponseHeaders))))
	up := newUpstream(t)
	base := serveProxy(t, g, up.URL)
	c := newClient(t)

	ok := do(t, c, "GET", base+"/", nil)
	assert.Equal(t, http.StatusOK, ok.status)
	assert.Equal(t, "1", ok.header.Get("Echo-X-Good"))
	assert.Empty(t, ok.header.Get("Echo-X-Bad-Value"))

	leak := do(t, c, "GET", base+"/", nil, "X-Secret", "s3cr3t")
	assert.Equal(t, http.StatusBadGateway, leak.status)
	assert.Equal(t, "leak", leak.header.Get("X-Reason"))
	assert.Empty(t, leak.header.Get("Echo-X-Secret"), "none of the upstream's headers reach the client")
	assert.Empty(t, leak.body)

	ch := do(t, c, "GET", base+"/challenge", nil)
	assert.Equal(t, http.StatusUnauthorized, ch.status)
	assert.Equal(t, "js:n1", ch.body)
}

// TestAfterClose: once the guard is closed, requests still go through
// their chain; agents that wanted request_complete get a cancel instead.
func TestAfterClose(t *testing.T) {
	t.Parallel()
	a := &peer{}
	p := newPool(t, map[string]string{"a": startPeer(t, a)})
	g, err := httpguard.New(p, httpguard.WithLogger(quiet), httpguard.WithRoute("/", httpguard.WithAgent("a")))
	require.NoError(t, err)
	require.NoError(t, g.Close(context.Background()))
	require.NoError(t, g.Close(context.Background()), "idempotent")
	res := do(t, newClient(t), "GET", serve(t, g.Middleware(http.NotFoundHandler()))+"/", nil)
	assert.Equal(t, http.StatusNotFound, res.status)
	assert.Equal(t, agentv2.CancelReason_CANCEL_REASON_UNSPECIFIED, a.nextCancel(t).GetReason())
}
