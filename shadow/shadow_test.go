package shadow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/shadow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scripted decides request headers by uri and counts what it sees.
type scripted struct {
	agent.Base
	decide func(uri string) *agentv2.AgentResponse
	stall  chan struct{} // if set, every decision waits for it (or the cancel)
	// stallOnly, if set, limits the stall to uris with this prefix.
	stallOnly string
	seen      atomic.Int64

	mu     sync.Mutex     // mu guards byCorr and bodies
	byCorr map[string]int // events seen per correlation id
	bodies []string       // body chunks' data, in arrival order
}

// saw counts an event of request corr.
func (s *scripted) saw(corr string) {
	s.seen.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byCorr == nil {
		s.byCorr = map[string]int{}
	}
	s.byCorr[corr]++
}

// requests returns how many requests the agent saw, and how many of them
// it saw n events of.
func (s *scripted) requests(n int) (all, whole int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.byCorr {
		if k == n {
			whole++
		}
	}
	return len(s.byCorr), whole
}

func (s *scripted) RequestHeaders(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	s.saw(ev.GetMetadata().GetCorrelationId())
	if s.stall != nil && strings.HasPrefix(ev.GetUri(), s.stallOnly) {
		select {
		case <-s.stall:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.decide(strings.SplitN(ev.GetUri(), "?", 2)[0]), nil
}

// RequestBodyChunk records the chunk's data.
func (s *scripted) RequestBodyChunk(_ context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	s.saw(ev.GetCorrelationId())
	s.mu.Lock()
	s.bodies = append(s.bodies, string(ev.GetData()))
	s.mu.Unlock()
	return agent.Allow(), nil
}

func (s *scripted) RequestComplete(_ context.Context, ev *agentv2.RequestCompleteEvent) (*agentv2.AgentResponse, error) {
	s.saw(ev.GetCorrelationId())
	return agent.Allow(), nil
}

func serve(t testing.TB, h agent.Handler, opts ...agent.Option) string {
	t.Helper()
	srv, err := agent.NewServer(h, append([]agent.Option{agent.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)...)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "a.sock")
	ln, err := srv.ListenUnix(path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeUnix(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		srv.Close()
		assert.NoError(t, <-done)
	})
	return "unix://" + path
}

// pair is a pool with agents "a" (primary) and "b" (shadow) behind ic.
func pair(t testing.TB, a, b agent.Handler, opts ...shadow.Option) (*pool.Pool, *shadow.Interceptor) {
	t.Helper()
	ic, err := shadow.New("a", "b", opts...)
	require.NoError(t, err)
	p, err := pool.New(pool.WithInterceptors(ic), pool.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.AddAgent(ctx, "a", serve(t, a)))
	require.NoError(t, p.AddAgent(ctx, "b", serve(t, b)))
	t.Cleanup(func() {
		ic.Close()
		assert.NoError(t, p.Close())
	})
	return p, ic
}

var ids atomic.Int64

func headers(uri string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{CorrelationId: fmt.Sprintf("r%d", ids.Add(1))}, Method: "GET", Uri: uri}}}
}

func complete(corr string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{CorrelationId: corr}}}
}

func send(t *testing.T, p *pool.Pool, agentID string, ev *agentv2.ProxyToAgent) *agentv2.AgentResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := p.Send(ctx, agentID, ev)
	require.NoError(t, err)
	return resp
}

func total(st map[shadow.Result]uint64) (n uint64) {
	for _, v := range st {
		n += v
	}
	return n
}

func TestDisagreementsCountedExactly(t *testing.T) {
	t.Parallel()
	primary := &scripted{decide: func(uri string) *agentv2.AgentResponse {
		switch uri {
		case "/c":
			return agent.Block(403, "")
		case "/d":
			return agent.Block(403, "")
		}
		return agent.AllowSetRequestHeader("x", "1")
	}}
	shadowAgent := &scripted{decide: func(uri string) *agentv2.AgentResponse {
		switch uri {
		case "/b":
			return agent.Block(403, "")
		case "/d":
			return agent.Block(429, "")
		case "/e":
			return agent.AllowSetRequestHeader("x", "2")
		}
		return agent.AllowSetRequestHeader("x", "1")
	}}
	p, ic := pair(t, primary, shadowAgent)
	for _, uri := range []string{"/a", "/b", "/c", "/d", "/e"} {
		resp := send(t, p, "a", headers(uri))
		if uri == "/b" || uri == "/e" {
			assert.NotNil(t, resp.GetAllow(), "%s: the caller gets the primary's answer", uri)
		}
	}
	require.Eventually(t, func() bool { return total(ic.Stats()) == 5 }, 5*time.Second, 5*time.Millisecond)
	st := ic.Stats()
	for r, want := range map[shadow.Result]uint64{shadow.Agree: 1, shadow.AllowVsBlock: 1, shadow.BlockVsAllow: 1,
		shadow.DifferentBlock: 1, shadow.DifferentMutations: 1, shadow.ShadowError: 0, shadow.Dropped: 0} {
		assert.Equal(t, want, st[r], "%s", r)
	}
	ds := ic.Disagreements()
	require.Len(t, ds, 4)
	got := map[shadow.Result]string{}
	for _, d := range ds {
		got[d.Result] = d.PrimaryDecision + " / " + d.ShadowDecision
	}
	assert.Equal(t, "allow with 1 header mutations / block 403", got[shadow.AllowVsBlock])
	assert.Equal(t, "block 403 / block 429", got[shadow.DifferentBlock])

	rec := httptest.NewRecorder()
	ic.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var rep shadow.Report
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &rep))
	assert.Equal(t, "a", rep.Primary)
	assert.Len(t, rep.Disagreements, 4)
	assert.Equal(t, uint64(1), rep.Counts[shadow.Agree])
}

// TestStalledShadowChangesNothing: a shadow that answers nothing for 10 s
// adds no latency to the primary's callers; the excess is dropped and
// counted.
func TestStalledShadowChangesNothing(t *testing.T) {
	t.Parallel()
	primary := &scripted{decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	stalled := &scripted{stall: make(chan struct{}), decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	p, ic := pair(t, primary, stalled, shadow.WithMaxInFlight(4), shadow.WithTimeout(10*time.Second))
	const n = 50
	var slowest time.Duration
	for range n {
		start := time.Now()
		send(t, p, "a", headers("/x"))
		slowest = max(slowest, time.Since(start))
	}
	assert.Less(t, slowest, time.Second, "the primary's calls never wait for the shadow")
	st := ic.Stats()
	assert.GreaterOrEqual(t, st[shadow.Dropped], uint64(n-4), "beyond 4 in flight, events are dropped and counted")
	assert.Equal(t, int64(n), primary.seen.Load())
	close(stalled.stall)
}

// TestCloseAbandonsUncounted: Close abandons the calls a stalled shadow
// holds; they are not the shadow's errors.
func TestCloseAbandonsUncounted(t *testing.T) {
	t.Parallel()
	primary := &scripted{decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	stalled := &scripted{stall: make(chan struct{}), decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	p, ic := pair(t, primary, stalled, shadow.WithTimeout(time.Minute))
	for range 4 {
		send(t, p, "a", headers("/x"))
	}
	require.Eventually(t, func() bool { return stalled.seen.Load() >= 1 }, 5*time.Second, time.Millisecond,
		"the stalled shadow holds a call")
	ic.Close()
	assert.Zero(t, total(ic.Stats()), "abandoned calls are neither compared nor dropped")
	assert.Empty(t, ic.Disagreements())
	close(stalled.stall)
}

// TestSampling mirrors a sample of requests, each whole or not at all.
func TestSampling(t *testing.T) {
	t.Parallel()
	primary := &scripted{decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	shadowAgent := &scripted{decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	p, ic := pair(t, primary, shadowAgent, shadow.WithSampleRate(0.3), shadow.WithSeed(7))
	const n = 300
	for range n {
		ev := headers("/x")
		send(t, p, "a", ev)
		send(t, p, "a", complete(ev.GetRequestHeaders().GetMetadata().GetCorrelationId()))
	}
	// A sampled request is mirrored whole, headers and completion: once
	// the shadow has answered everything it was sent, it saw both events of
	// every request it saw. (Until then a completion may still be queued.)
	require.Eventually(t, func() bool {
		all, whole := shadowAgent.requests(2)
		return int64(total(ic.Stats())) == shadowAgent.seen.Load() && all == whole
	}, 5*time.Second, 5*time.Millisecond, "the shadow saw part of a request")
	mirrored, _ := shadowAgent.requests(2)
	assert.InDelta(t, 0.3*n, float64(mirrored), 0.12*n, "about 30%% of the requests")
	assert.Equal(t, uint64(2*mirrored), ic.Stats()[shadow.Agree])
}

func TestPromote(t *testing.T) {
	t.Parallel()
	a := &scripted{decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	b := &scripted{decide: func(string) *agentv2.AgentResponse { return agent.Block(403, "") }}
	p, ic := pair(t, a, b)
	send(t, p, "a", headers("/x"))
	require.Eventually(t, func() bool { return ic.Stats()[shadow.AllowVsBlock] == 1 }, 5*time.Second, 5*time.Millisecond)
	ic.Promote()
	primary, sh := ic.Agents()
	assert.Equal(t, [2]string{"b", "a"}, [2]string{primary, sh})
	send(t, p, "a", headers("/x")) // "a" is the shadow now: not mirrored
	send(t, p, "b", headers("/x"))
	require.Eventually(t, func() bool { return ic.Stats()[shadow.BlockVsAllow] == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, uint64(2), total(ic.Stats()))
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		opts []shadow.Option
	}{
		{"a", "a", nil}, {"", "b", nil},
		{"a", "b", []shadow.Option{shadow.WithSampleRate(1.5)}},
		{"a", "b", []shadow.Option{shadow.WithMaxInFlight(0)}},
		{"a", "b", []shadow.Option{shadow.WithTimeout(0)}},
	} {
		_, err := shadow.New(tc.a, tc.b, tc.opts...)
		assert.Error(t, err)
	}
}

// TestPrimaryFailedOpen: when the pool allows an event without asking the
// primary (flow control's fail-open on a paused connection), the shadow's
// answer has nothing to be compared with: primary_error, not agree.
func TestPrimaryFailedOpen(t *testing.T) {
	t.Parallel()
	primary := &scripted{stall: make(chan struct{}), stallOnly: "/hold", decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	shadowAgent := &scripted{decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	ic, err := shadow.New("a", "b")
	require.NoError(t, err)
	p, err := pool.New(pool.WithInterceptors(ic), pool.WithConnections(1), pool.WithFlowControl(pool.FailOpen, 0),
		pool.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The primary takes two events at a time: two held ones pause it.
	require.NoError(t, p.AddAgent(ctx, "a", serve(t, primary, agent.WithMaxConcurrency(2))))
	require.NoError(t, p.AddAgent(ctx, "b", serve(t, shadowAgent)))
	t.Cleanup(func() {
		ic.Close()
		assert.NoError(t, p.Close())
	})
	held := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := p.Send(ctx, "a", headers("/hold"))
			held <- err
		}()
	}
	require.Eventually(t, func() bool {
		r, err := p.Ready("a")
		return err == nil && r == pool.NotReadyPaused
	}, 5*time.Second, time.Millisecond, "the primary paused its connection")
	resp := send(t, p, "a", headers("/x"))
	assert.NotNil(t, resp.GetAllow(), "the caller got the pool's fail-open allow")
	require.Eventually(t, func() bool { return ic.Stats()[shadow.PrimaryError] == 1 }, 5*time.Second, time.Millisecond)
	close(primary.stall)
	for range 2 {
		require.NoError(t, <-held)
	}
	require.Eventually(t, func() bool { return total(ic.Stats()) == 3 }, 5*time.Second, time.Millisecond)
	st := ic.Stats()
	assert.Equal(t, uint64(1), st[shadow.PrimaryError])
	assert.Equal(t, uint64(2), st[shadow.Agree], "the held requests, answered by both")
}

// Answers that agree though they are encoded differently (audit fields,
// which the comparison ignores, and maps, whose encoding has no order) are
// counted as agreeing; a disagreement still reports the primary's own
// decision and audit tags, kept from before its caller got the answer and
// changed it.
func TestComparesKeptAnswers(t *testing.T) {
	t.Parallel()
	withAudit := func(resp *agentv2.AgentResponse, tag string) *agentv2.AgentResponse {
		resp.Audit = &agentv2.AuditMetadata{Tags: []string{tag}}
		resp.RoutingMetadata = map[string]string{}
		for i := range 8 {
			resp.RoutingMetadata[fmt.Sprint("k", i)] = tag
		}
		return resp
	}
	primary := &scripted{decide: func(uri string) *agentv2.AgentResponse {
		if uri == "/blocked" {
			return withAudit(agent.Block(403, ""), "sqli")
		}
		return withAudit(agent.AllowSetRequestHeader("x", "1"), "primary")
	}}
	shadowAgent := &scripted{decide: func(string) *agentv2.AgentResponse {
		return withAudit(agent.AllowSetRequestHeader("x", "1"), "shadow")
	}}
	p, ic := pair(t, primary, shadowAgent)
	for range 20 {
		send(t, p, "a", headers("/ok")).Decision = &agentv2.AgentResponse_Block{Block: &agentv2.BlockDecision{Status: 451}}
	}
	resp := send(t, p, "a", headers("/blocked"))
	resp.Audit.Tags[0] = "changed by the caller"
	resp.Decision = &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}
	require.Eventually(t, func() bool { return total(ic.Stats()) == 21 }, 5*time.Second, 5*time.Millisecond)
	st := ic.Stats()
	assert.Equal(t, uint64(20), st[shadow.Agree], "the callers' changes to their answers do not count")
	assert.Equal(t, uint64(1), st[shadow.BlockVsAllow])
	ds := ic.Disagreements()
	require.Len(t, ds, 1)
	assert.Equal(t, "block 403", ds[0].PrimaryDecision)
	assert.Equal(t, []string{"sqli"}, ds[0].PrimaryTags)
	assert.Equal(t, []string{"shadow"}, ds[0].ShadowTags)
}
