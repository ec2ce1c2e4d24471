package pool

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// goResults collects what Go's done functions hear, failing the test if
// one is called twice.
type goResults struct {
	t   *testing.T
	mu  sync.Mutex
	got map[string]goResult
	wg  sync.WaitGroup
}

type goResult struct {
	resp *agentv2.AgentResponse
	err  error
}

func newGoResults(t *testing.T) *goResults { return &goResults{t: t, got: map[string]goResult{}} }

func (g *goResults) done(key string) func(*agentv2.AgentResponse, error) {
	g.wg.Add(1)
	return func(resp *agentv2.AgentResponse, err error) {
		g.mu.Lock()
		if _, dup := g.got[key]; dup {
			g.t.Errorf("done called twice for %s", key)
		}
		g.got[key] = goResult{resp, err}
		g.mu.Unlock()
		g.wg.Done()
	}
}

func (g *goResults) wait() map[string]goResult {
	g.t.Helper()
	ch := make(chan struct{})
	go func() { g.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		g.t.Fatal("not every done was called")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got
}

// TestGoPipeline: events sent with Go go through the pipeline: each gets
// its own request's answer, a request's later events follow the pin its
// headers made, the pin ends with request_complete, and the accounting
// (events in flight, slots) returns to zero.
func TestGoPipeline(t *testing.T) {
	rec := newRecorder("waf")
	rec.track = true
	rec.setHook(func(_ context.Context, corr string, kind agentv2.EventType) (*agentv2.AgentResponse, error) {
		if kind == agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS && corr == "r7" {
			return &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Block{Block: &agentv2.BlockDecision{Status: 403}}}, nil
		}
		return nil, nil
	})
	ua := newUnixAgent(t, rec)
	p := newTestPool(t, WithConnections(4))
	require.NoError(t, p.AddAgent(testCtx(t), "waf", ua.endpoint()))
	ctx := testCtx(t)

	const n = 32
	heads := newGoResults(t)
	for i := range n {
		corr := fmt.Sprintf("r%d", i)
		p.Go(ctx, "waf", headers(corr), heads.done(corr))
	}
	for corr, res := range heads.wait() {
		require.NoError(t, res.err, corr)
		assert.Equal(t, corr, res.resp.GetCorrelationId())
		if corr == "r7" {
			assert.Equal(t, uint32(403), res.resp.GetBlock().GetStatus())
		} else {
			assert.NotNil(t, res.resp.GetAllow(), corr)
		}
	}
	rest := newGoResults(t)
	for i := range n {
		corr := fmt.Sprintf("r%d", i)
		if corr == "r7" {
			continue // blocked: its pin is gone
		}
		p.Go(ctx, "waf", requestBody(corr, 0, true), rest.done(corr+"/body"))
	}
	rest.wait()
	done := newGoResults(t)
	for i := range n {
		corr := fmt.Sprintf("r%d", i)
		p.Go(ctx, "waf", complete(corr), done.done(corr))
	}
	for corr, res := range done.wait() {
		require.NoError(t, res.err, corr)
	}
	rec.mu.Lock()
	for corr, peers := range rec.byCorr {
		if corr != "r7" { // blocked: its complete is balanced anew
			assert.Len(t, peers, 1, "request %s stayed on one connection", corr)
		}
	}
	rec.mu.Unlock()
	a := p.lookup("waf")
	assert.Zero(t, a.events.inFlight())
	assert.Zero(t, a.aff.Len(), "request_complete ended every pin")
	for _, sc := range a.connList() {
		assert.Zero(t, sc.InFlight(), sc.id)
	}
}

// TestGoNeverWaits: at a connection's concurrency limit, or on an unknown
// agent, or without a cancellable context, Go fails at once rather than
// wait; the held event still gets its answer once released.
func TestGoNeverWaits(t *testing.T) {
	rec := newRecorder("waf")
	release := make(chan struct{})
	rec.setHook(holdUntil("held", release))
	ua := newUnixAgent(t, rec)
	p := newTestPool(t, WithConnections(1), WithMaxConcurrency(1, time.Minute))
	require.NoError(t, p.AddAgent(testCtx(t), "waf", ua.endpoint()))
	ctx := testCtx(t)

	held := newGoResults(t)
	p.Go(ctx, "waf", headers("held"), held.done("held"))
	require.Eventually(t, func() bool { return rec.active.Load() == 1 }, 5*time.Second, time.Millisecond)

	refused := newGoResults(t)
	start := time.Now()
	p.Go(ctx, "waf", headers("other"), refused.done("full"))
	p.Go(ctx, "nobody", headers("x"), refused.done("unknown"))
	p.Go(context.Background(), "waf", headers("y"), refused.done("no context"))
	got := refused.wait()
	assert.Less(t, time.Since(start), time.Second)
	assert.ErrorIs(t, got["full"].err, ErrConcurrencyLimit)
	assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(got["full"].err))
	assert.ErrorIs(t, got["unknown"].err, ErrUnknownAgent)
	assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(got["no context"].err))

	close(release)
	require.NoError(t, held.wait()["held"].err)
	assert.Zero(t, p.lookup("waf").events.inFlight())
	_, err := p.Send(ctx, "waf", complete("held"))
	require.NoError(t, err)
}

// TestGoCallerGivesUp: a Go whose context ends before the agent answers
// gets the context's error, and its slot comes back.
func TestGoCallerGivesUp(t *testing.T) {
	rec := newRecorder("waf")
	release := make(chan struct{})
	defer close(release)
	rec.setHook(holdUntil("held", release))
	ua := newUnixAgent(t, rec)
	p := newTestPool(t, WithConnections(1))
	require.NoError(t, p.AddAgent(testCtx(t), "waf", ua.endpoint()))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res := newGoResults(t)
	p.Go(ctx, "waf", headers("held"), res.done("held"))
	assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(res.wait()["held"].err))
	require.NoError(t, p.Cancel(testCtx(t), "waf", &agentv2.CancelRequest{CorrelationId: "held"}))
	a := p.lookup("waf")
	assert.Zero(t, a.events.inFlight())
	for _, sc := range a.connList() {
		assert.Zero(t, sc.InFlight())
	}
}

// TestGoNeverFailsOpen: on a paused connection of an agent that fails
// open, Go fails its event instead: an allow nobody asked the agent for
// is nobody's answer.
func TestGoNeverFailsOpen(t *testing.T) {
	t.Parallel()
	p, rec, release, held := pausedAgent(t, WithFlowControl(FailOpen, 0))
	ctx := testCtx(t)
	res := newGoResults(t)
	p.Go(ctx, "waf", headers("r2"), res.done("r2"))
	got := res.wait()["r2"]
	assert.Nil(t, got.resp)
	assert.ErrorIs(t, got.err, ErrPaused)
	assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(got.err))
	assert.Equal(t, int64(2), rec.events.Load(), "the agent saw nothing more")
	assert.Zero(t, stats(t, p, "waf").FailOpen)
	// A request whose headers failed open on Send skips the agent; its
	// later events sent with Go fail too rather than allow.
	_, err := p.Send(ctx, "waf", headers("r3"))
	require.NoError(t, err)
	later := newGoResults(t)
	p.Go(ctx, "waf", requestBody("r3", 0, true), later.done("r3"))
	assert.ErrorIs(t, later.wait()["r3"].err, ErrPaused)
	_, err = p.Send(ctx, "waf", complete("r3"))
	require.NoError(t, err)
	finishHolds(t, p, release, held)
}
