package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// forEachTransport runs test over every transport, in parallel.
func forEachTransport(t *testing.T, test func(t *testing.T, start func(t testing.TB, h Handler, opts ...Option) *env)) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			test(t, tr.start)
		})
	}
}

// kindHandler answers each event kind with a block whose status names the
// method called.
type kindHandler struct {
	Base
	configured atomic.Value
}

func (*kindHandler) RequestHeaders(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	return Block(401, "RequestHeaders"), nil
}

func (*kindHandler) RequestBodyChunk(context.Context, *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	return Block(402, "RequestBodyChunk"), nil
}

func (*kindHandler) ResponseHeaders(context.Context, *agentv2.ResponseHeadersEvent) (*agentv2.AgentResponse, error) {
	return Block(403, "ResponseHeaders"), nil
}

func (*kindHandler) ResponseBodyChunk(context.Context, *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	return Block(404, "ResponseBodyChunk"), nil
}

func (*kindHandler) RequestComplete(context.Context, *agentv2.RequestCompleteEvent) (*agentv2.AgentResponse, error) {
	return Block(405, "RequestComplete"), nil
}

func (*kindHandler) WebSocketFrame(context.Context, *agentv2.WebSocketFrameEvent) (*agentv2.AgentResponse, error) {
	return Block(406, "WebSocketFrame"), nil
}

func (*kindHandler) GuardrailInspect(context.Context, *agentv2.GuardrailInspectEvent) (*agentv2.AgentResponse, error) {
	return Block(407, "GuardrailInspect"), nil
}

func (h *kindHandler) Configure(_ context.Context, ev *agentv2.ConfigureEvent) error {
	h.configured.Store(ev.GetConfigJson())
	return nil
}

func TestHandshake(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		e := start(t, Base{}, WithAgentID("waf-1"), WithName("waf"), WithVersion("1.2.3"), WithMaxConcurrency(64))
		c := e.dial()
		hs := c.handshake()
		assert.True(t, hs.GetSuccess())
		assert.EqualValues(t, 2, hs.GetProtocolVersion())
		assert.Equal(t, "protobuf", hs.GetEncoding())
		caps := hs.GetCapabilities()
		assert.Equal(t, "waf-1", caps.GetAgentId())
		assert.Equal(t, "waf", caps.GetName())
		assert.Equal(t, "1.2.3", caps.GetVersion())
		assert.Len(t, caps.GetSupportedEvents(), 8)
		assert.True(t, caps.GetFeatures().GetEchoesEventId())
		assert.True(t, caps.GetFeatures().GetFlowControl())
		assert.True(t, caps.GetFeatures().GetCancellation())
		assert.False(t, caps.GetFeatures().GetMetricsExport())
		assert.EqualValues(t, 64, caps.GetLimits().GetMaxConcurrency())
		assert.EqualValues(t, DefaultHealthInterval.Milliseconds(), caps.GetHealthConfig().GetReportIntervalMs())
		assert.True(t, proto.Equal(caps, e.srv.Capabilities()), "Capabilities() differs from the handshake's")
		// A health report follows the handshake at once.
		h := c.recv(nil).GetHealth()
		require.NotNil(t, h)
		assert.Equal(t, "waf-1", h.GetAgentId())
		assert.Equal(t, agentv2.HealthState_HEALTH_STATE_HEALTHY, h.GetState())
	})
}

func TestHandshakeRejected(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		e := start(t, Base{})
		for name, m := range map[string]*agentv2.ProxyToAgent{
			"version":  handshakeMsg(0, 1, 3),
			"encoding": {Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{SupportedVersions: []uint32{2}, SupportedEncodings: []string{"json"}}}},
		} {
			t.Run(name, func(t *testing.T) {
				c := e.dial()
				hs := c.handshakeWith(m)
				assert.False(t, hs.GetSuccess())
				assert.Contains(t, hs.GetError(), "unsupported")
				c.waitClosed()
			})
		}
	})
}

func TestFirstMessageMustBeHandshake(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		e := start(t, Base{})
		c := e.dial()
		c.Send(&agentv2.ProxyToAgent{EventId: 1, Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: 1}}})
		select {
		case m, ok := <-c.in:
			require.False(t, ok, "agent answered %v before a handshake", m)
		case <-time.After(waitTimeout):
			t.Fatal("connection still open")
		}
		// So does a second handshake.
		c2 := e.dialReady()
		c2.Send(handshakeMsg(0))
		c2.waitClosed()
	})
}

func TestEventKinds(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		h := &kindHandler{}
		e := start(t, h)
		c := e.dialReady()
		events := []struct {
			m      *agentv2.ProxyToAgent
			status uint32
			cid    string
		}{
			{requestHeaders(0, "r1"), 401, "r1"},
			{bodyChunk(0, "r2", 0), 402, "r2"},
			{&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: &agentv2.ResponseHeadersEvent{CorrelationId: "r3", StatusCode: 200}}}, 403, "r3"},
			{&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: &agentv2.BodyChunkEvent{CorrelationId: "r4"}}}, 404, "r4"},
			{&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{CorrelationId: "r5"}}}, 405, "r5"},
			{&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_WebsocketFrame{WebsocketFrame: &agentv2.WebSocketFrameEvent{CorrelationId: "r6"}}}, 406, "r6"},
			{&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Guardrail{Guardrail: &agentv2.GuardrailInspectEvent{CorrelationId: "r7", Content: "hi"}}}, 407, "r7"},
		}
		for i, ev := range events {
			ev.m.EventId = uint64(100 + i)
			c.Send(ev.m)
		}
		c.Send(&agentv2.ProxyToAgent{EventId: 200, Message: &agentv2.ProxyToAgent_Configure{Configure: &agentv2.ConfigureEvent{ConfigJson: `{"mode":"strict"}`}}})
		got := c.responses(len(events) + 1)
		for i, ev := range events {
			r := got[uint64(100+i)]
			require.NotNil(t, r, "no response to %T", ev.m.Message)
			assert.Equal(t, ev.cid, r.GetCorrelationId())
			assert.Equal(t, ev.status, r.GetBlock().GetStatus(), "event %T", ev.m.Message)
		}
		cfg := got[200]
		assert.NotNil(t, cfg.GetAllow(), "configure answered %v", cfg)
		assert.Empty(t, cfg.GetCorrelationId())
		assert.Equal(t, `{"mode":"strict"}`, h.configured.Load())
	})
}

// errHandler fails in several ways.
type errHandler struct{ Base }

func (errHandler) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	switch ev.GetUri() {
	case "/coded":
		return Allow(), agentwire.Errorf(agentwire.CodePermissionDenied, "not for you")
	case "/plain":
		return nil, errors.New("plain failure")
	case "/panic":
		panic("boom")
	}
	return nil, nil
}

func (errHandler) Configure(context.Context, *agentv2.ConfigureEvent) error {
	return agentwire.Errorf(agentwire.CodeInvalidArgument, "bad config")
}

func TestHandlerError(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		e := start(t, errHandler{})
		c := e.dialReady()
		c.Send(requestHeaders(1, "coded"))
		c.Send(requestHeaders(2, "plain"))
		c.Send(requestHeaders(3, "panic"))
		c.Send(requestHeaders(4, "ok"))
		c.Send(&agentv2.ProxyToAgent{EventId: 5, Message: &agentv2.ProxyToAgent_Configure{Configure: &agentv2.ConfigureEvent{}}})
		got := c.responses(5)
		for id, want := range map[uint64]struct {
			code agentwire.Code
			msg  string
		}{
			1: {agentwire.CodePermissionDenied, "not for you"},
			2: {agentwire.CodeUnknown, "plain failure"},
			3: {agentwire.CodeInternal, "panicked: boom"},
			5: {agentwire.CodeInvalidArgument, "bad config"},
		} {
			r := got[id]
			assert.Nil(t, r.GetDecision(), "event %d has a decision", id)
			assert.EqualValues(t, want.code, r.GetError().GetCode(), "event %d", id)
			assert.Contains(t, r.GetError().GetMessage(), want.msg, "event %d", id)
		}
		assert.Equal(t, "coded", got[1].GetCorrelationId())
		assert.NotNil(t, got[4].GetAllow())
		assert.Nil(t, got[4].GetError())
	})
}

// barrierHandler holds every request until n are running at once.
type barrierHandler struct {
	Base
	n       int32
	running atomic.Int32
	all     chan struct{}
}

func (h *barrierHandler) RequestHeaders(ctx context.Context, _ *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	if h.running.Add(1) == h.n {
		close(h.all)
	}
	select {
	case <-h.all:
		return Allow(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestManyConcurrentEvents(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		const n = 1000
		h := &barrierHandler{n: n, all: make(chan struct{})}
		e := start(t, h, WithMaxConcurrency(n))
		c := e.dialReady()
		go func() {
			for i := 1; i <= n; i++ {
				if c.send(requestHeaders(uint64(i), fmt.Sprint("req-", i))) != nil {
					return
				}
			}
		}()
		// Every handler call runs at the same time, or none returns.
		got := c.responses(n)
		for i := 1; i <= n; i++ {
			r := got[uint64(i)]
			require.NotNil(t, r, "event %d unanswered", i)
			require.Equal(t, fmt.Sprint("req-", i), r.GetCorrelationId())
			require.NotNil(t, r.GetAllow(), "event %d: %v", i, r)
		}
	})
}

func TestFlowControlHonoured(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		// A proxy that stops sending while paused never sees a refusal, though
		// it sends faster than the agent works (bursts of 4 every 2 ms, about
		// 2000/s, against 8 workers of 20 ms: 400/s) and more than the queue
		// holds. The queue absorbs what it sends before the pause reaches it.
		e := start(t, slowHandler{}, WithMaxConcurrency(8), WithMaxQueue(200))
		c := e.dialReady()
		const n = 300
		var mu sync.Mutex
		resume := sync.NewCond(&mu)
		paused := false
		go func() {
			for i := 1; i <= n; i++ {
				mu.Lock()
				for paused {
					resume.Wait()
				}
				mu.Unlock()
				if c.send(bodyChunk(uint64(i), fmt.Sprint("r", i%50), uint32(i))) != nil {
					return
				}
				if i%4 == 0 {
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()
		pauses := 0
		for answered := 0; answered < n; {
			m := c.recv(nil)
			if fc := m.GetFlowControl(); fc != nil {
				mu.Lock()
				paused = fc.GetAction() == agentv2.FlowAction_FLOW_ACTION_PAUSE
				if paused {
					pauses++
				}
				resume.Broadcast()
				mu.Unlock()
			}
			if r := m.GetResponse(); r != nil {
				answered++
				require.Nil(t, r.GetError(), "event %d refused", m.EventId)
			}
		}
		assert.Positive(t, pauses)
	})
}

// orderHandler records the order of chunks per correlation id; chunks of
// "slow" wait for release, and it checks that no two events of one id
// overlap.
type orderHandler struct {
	Base
	release chan struct{}
	started chan string
	mu      sync.Mutex
	seen    map[string][]uint32
	active  map[string]bool
	overlap atomic.Bool
}

func (h *orderHandler) RequestBodyChunk(ctx context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	cid := ev.GetCorrelationId()
	h.mu.Lock()
	if h.active[cid] {
		h.overlap.Store(true)
	}
	h.active[cid] = true
	h.seen[cid] = append(h.seen[cid], ev.GetChunkIndex())
	h.mu.Unlock()
	h.started <- cid
	if cid == "slow" && ev.GetChunkIndex() == 0 {
		select {
		case <-h.release:
		case <-ctx.Done():
		}
	} else {
		time.Sleep(time.Duration(ev.GetChunkIndex()%3) * time.Millisecond)
	}
	h.mu.Lock()
	h.active[cid] = false
	h.mu.Unlock()
	return nil, nil
}

func TestPerCorrelationOrdering(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		h := &orderHandler{release: make(chan struct{}), started: make(chan string, 1000), seen: map[string][]uint32{}, active: map[string]bool{}}
		e := start(t, h)
		c := e.dialReady()
		const chunks = 20
		id := uint64(0)
		for i := range uint32(chunks) {
			for _, cid := range []string{"slow", "a", "b", "c"} {
				id++
				c.Send(bodyChunk(id, cid, i))
			}
		}
		// Every chunk of the other ids is answered while "slow" is blocked.
		got := c.responses(3 * chunks)
		for _, r := range got {
			require.NotEqual(t, "slow", r.GetCorrelationId())
		}
		close(h.release)
		c.responses(chunks)
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, cid := range []string{"slow", "a", "b", "c"} {
			require.Len(t, h.seen[cid], chunks, cid)
			for i, idx := range h.seen[cid] {
				require.EqualValues(t, i, idx, "%s out of order: %v", cid, h.seen[cid])
			}
		}
		require.False(t, h.overlap.Load(), "two events of one correlation id ran at once")
	})
}

// slowHandler takes a few milliseconds per event.
type slowHandler struct{ Base }

func (slowHandler) RequestHeaders(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	time.Sleep(3 * time.Millisecond)
	return nil, nil
}

func (slowHandler) RequestBodyChunk(context.Context, *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	time.Sleep(20 * time.Millisecond)
	return nil, nil
}

// blockHandler blocks every request until released or cancelled, and
// returns what made it stop.
type blockHandler struct {
	Base
	release chan struct{}
	started chan string
	causes  chan error
}

func newBlockHandler() *blockHandler {
	return &blockHandler{release: make(chan struct{}), started: make(chan string, 1000), causes: make(chan error, 1000)}
}

func (h *blockHandler) RequestHeaders(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	h.started <- ev.GetMetadata().GetCorrelationId()
	select {
	case <-h.release:
		return Allow(), nil
	case <-ctx.Done():
		h.causes <- context.Cause(ctx)
		return nil, ctx.Err()
	}
}

func (h *blockHandler) waitStarted(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		select {
		case id := <-h.started:
			ids = append(ids, id)
		case <-time.After(waitTimeout):
			t.Fatalf("only %d of %d handlers started", len(ids), n)
		}
	}
	return ids
}

func TestFlowControl(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		h := newBlockHandler()
		e := start(t, h, WithMaxConcurrency(4), WithMaxQueue(2))
		c := e.dialReady()
		for i := 1; i <= 4; i++ {
			c.Send(requestHeaders(uint64(i), fmt.Sprint("r", i)))
		}
		h.waitStarted(t, 4)
		fc := c.recv(isFlow).GetFlowControl()
		assert.Equal(t, agentv2.FlowAction_FLOW_ACTION_PAUSE, fc.GetAction())
		assert.Nil(t, fc.CorrelationId, "a connection-wide pause has no correlation id")
		// The proxy ignores the pause: two more are queued, the third refused.
		for i := 5; i <= 7; i++ {
			c.Send(requestHeaders(uint64(i), fmt.Sprint("r", i)))
		}
		r := c.response()
		assert.EqualValues(t, 7, r.EventId)
		assert.EqualValues(t, agentwire.CodeResourceExhausted, r.GetResponse().GetError().GetCode())
		close(h.release)
		answered, resumed := 0, false
		for answered < 6 || !resumed {
			m := c.recv(nil)
			switch {
			case m.GetResponse() != nil:
				answered++
				assert.NotNil(t, m.GetResponse().GetAllow(), "event %d", m.EventId)
			case m.GetFlowControl() != nil:
				assert.False(t, resumed, "second flow-control signal")
				assert.Equal(t, agentv2.FlowAction_FLOW_ACTION_RESUME, m.GetFlowControl().GetAction())
				resumed = true
			}
		}
	})
}

func TestCancel(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		h := newBlockHandler()
		e := start(t, h)
		c := e.dialReady()
		c.Send(requestHeaders(1, "x"))
		c.Send(requestHeaders(2, "y"))
		h.waitStarted(t, 2)
		c.Send(&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Cancel{Cancel: &agentv2.CancelRequest{
			CorrelationId: "x", Reason: agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT,
		}}})
		r := c.response()
		assert.EqualValues(t, 1, r.EventId)
		assert.EqualValues(t, agentwire.CodeCanceled, r.GetResponse().GetError().GetCode())
		cause := <-h.causes
		assert.Contains(t, cause.Error(), "CLIENT_DISCONNECT")

		// A timeout cancel of everything: the running handler and a queued event.
		c.Send(bodyChunk(3, "y", 0))
		c.Send(&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Cancel{Cancel: &agentv2.CancelRequest{
			Reason: agentv2.CancelReason_CANCEL_REASON_TIMEOUT,
		}}})
		got := c.responses(2)
		assert.EqualValues(t, agentwire.CodeCanceled, got[2].GetError().GetCode())
		assert.EqualValues(t, agentwire.CodeDeadlineExceeded, got[3].GetError().GetCode(), "the queued chunk is refused with the cause")
		assert.EqualValues(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(<-h.causes))
	})
}

func TestPing(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		e := start(t, Base{}, WithClock(func() time.Time { return time.UnixMilli(5000) }))
		c := e.dialReady()
		c.Send(&agentv2.ProxyToAgent{EventId: 9, Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: 7, TimestampMs: 123}}})
		m := c.recv(func(m *agentv2.AgentToProxy) bool { return m.GetPong() != nil })
		assert.EqualValues(t, 9, m.EventId)
		assert.EqualValues(t, 7, m.GetPong().GetSequence())
		assert.EqualValues(t, 123, m.GetPong().GetPingTimestampMs())
		assert.EqualValues(t, 5000, m.GetPong().GetTimestampMs())
	})
}

func TestHealthReports(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		e := start(t, slowHandler{}, WithAgentID("h1"))
		c := e.dial()
		hs := c.handshakeWith(handshakeMsg(40))
		assert.EqualValues(t, 40, hs.GetCapabilities().GetHealthConfig().GetReportIntervalMs())
		first := time.Now()
		c.recv(isHealth)
		for i := 1; i <= 3; i++ {
			c.Send(requestHeaders(uint64(i), fmt.Sprint("r", i)))
		}
		c.responses(3)
		var last *agentv2.HealthStatus
		for range 3 {
			last = c.recv(isHealth).GetHealth()
		}
		elapsed := time.Since(first)
		assert.GreaterOrEqual(t, elapsed, 80*time.Millisecond, "three reports came too fast")
		assert.Less(t, elapsed, 5*time.Second)
		load := last.GetLoad()
		require.NotNil(t, load)
		assert.Equal(t, "h1", last.GetAgentId())
		assert.EqualValues(t, 3, load.GetRequestsProcessed())
		assert.Zero(t, load.GetInFlight())
		assert.Zero(t, load.GetQueueDepth())
		assert.GreaterOrEqual(t, load.GetAvgLatencyMs(), float32(2))
		assert.GreaterOrEqual(t, load.GetP99LatencyMs(), load.GetP50LatencyMs())
		assert.NotZero(t, last.GetTimestampMs())
	})
}

func TestHealthLoad(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		h := newBlockHandler()
		e := start(t, h)
		c := e.dial()
		c.handshakeWith(handshakeMsg(20))
		c.Send(requestHeaders(1, "a"))
		c.Send(bodyChunk(2, "a", 0))
		c.Send(requestHeaders(3, "b"))
		h.waitStarted(t, 2)
		c.recv(func(m *agentv2.AgentToProxy) bool {
			l := m.GetHealth().GetLoad()
			return l.GetInFlight() == 2 && l.GetQueueDepth() == 1
		})
		close(h.release)
		c.responses(3)
	})
}

type metricsHandler struct{ Base }

func (metricsHandler) Metrics(context.Context) *agentv2.MetricsReport {
	return &agentv2.MetricsReport{Counters: []*agentv2.CounterMetric{{Name: "blocked_total", Value: 42}}}
}

func (metricsHandler) Health(context.Context) agentv2.HealthState {
	return agentv2.HealthState_HEALTH_STATE_DEGRADED
}

func TestMetricsAndHealthReporter(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		e := start(t, metricsHandler{}, WithAgentID("m1"))
		c := e.dial()
		hs := c.handshakeWith(handshakeMsg(30))
		assert.True(t, hs.GetCapabilities().GetFeatures().GetMetricsExport())
		assert.Equal(t, agentv2.HealthState_HEALTH_STATE_DEGRADED, c.recv(isHealth).GetHealth().GetState())
		for range 2 {
			m := c.recv(func(m *agentv2.AgentToProxy) bool { return m.GetMetrics() != nil }).GetMetrics()
			assert.Equal(t, "m1", m.GetAgentId())
			assert.EqualValues(t, 30, m.GetIntervalMs())
			require.Len(t, m.GetCounters(), 1)
			assert.EqualValues(t, 42, m.GetCounters()[0].GetValue())
		}
	})
}

// configHandler asks the proxy for a config update from inside a handler,
// and logs through the peer.
type configHandler struct{ Base }

func (configHandler) RequestHeaders(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	p := PeerFromContext(ctx)
	if p == nil {
		return nil, errors.New("no peer")
	}
	if p.Handshake().GetProxyId() != "test-proxy" {
		return nil, fmt.Errorf("handshake from %q", p.Handshake().GetProxyId())
	}
	if err := p.Log(ctx, agentv2.LogLevel_LOG_LEVEL_WARN, "asking", map[string]string{"k": "v"}); err != nil {
		return nil, err
	}
	resp, err := p.RequestConfigUpdate(ctx, &agentv2.ConfigUpdateRequest{
		UpdateType: &agentv2.ConfigUpdateRequest_RequestReload{RequestReload: &agentv2.RequestReload{}},
	})
	if err != nil {
		return nil, err
	}
	if !resp.GetAccepted() {
		return Block(403, resp.GetError()), nil
	}
	return Allow(), nil
}

func answerConfigUpdate(t *testing.T, c *conn, accept bool) {
	t.Helper()
	m := c.recv(func(m *agentv2.AgentToProxy) bool { return m.GetConfigUpdate() != nil })
	req := m.GetConfigUpdate()
	require.NotEmpty(t, req.GetRequestId())
	require.NotNil(t, req.GetRequestReload())
	msg := "refused"
	c.Send(&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ConfigResponse{ConfigResponse: &agentv2.ConfigUpdateResponse{
		RequestId: req.GetRequestId(), Accepted: accept, Error: &msg,
	}}})
}

func TestConfigUpdateAndLog(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		e := start(t, configHandler{})
		c := e.dialReady()
		c.Send(requestHeaders(1, "r1"))
		lg := c.recv(func(m *agentv2.AgentToProxy) bool { return m.GetLog() != nil }).GetLog()
		assert.Equal(t, "asking", lg.GetMessage())
		assert.Equal(t, "r1", lg.GetCorrelationId())
		assert.Equal(t, map[string]string{"k": "v"}, lg.GetFields())
		assert.Equal(t, agentv2.LogLevel_LOG_LEVEL_WARN, lg.GetLevel())
		// A stray config response is ignored.
		c.Send(&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ConfigResponse{ConfigResponse: &agentv2.ConfigUpdateResponse{RequestId: "nobody"}}})
		answerConfigUpdate(t, c, true)
		assert.NotNil(t, c.response().GetResponse().GetAllow())
		c.Send(requestHeaders(2, "r2"))
		answerConfigUpdate(t, c, false)
		assert.EqualValues(t, 403, c.response().GetResponse().GetBlock().GetStatus())

		// The server-level call uses a live connection.
		done := make(chan *agentv2.ConfigUpdateResponse, 1)
		go func() {
			resp, err := e.srv.RequestConfigUpdate(context.Background(), &agentv2.ConfigUpdateRequest{
				RequestId:  "srv-1",
				UpdateType: &agentv2.ConfigUpdateRequest_RequestReload{RequestReload: &agentv2.RequestReload{}},
			})
			assert.NoError(t, err)
			done <- resp
		}()
		answerConfigUpdate(t, c, true)
		resp := <-done
		assert.Equal(t, "srv-1", resp.GetRequestId())
		assert.True(t, resp.GetAccepted())
	})
}

func TestRequestConfigUpdateWithoutProxy(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Base{})
	defer srv.Close()
	_, err := srv.RequestConfigUpdate(context.Background(), &agentv2.ConfigUpdateRequest{})
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))
}

// hookHandler records drain and shutdown notices.
type hookHandler struct {
	Base
	drained  chan *agentv2.DrainRequest
	shutdown chan *agentv2.ShutdownRequest
}

func (h *hookHandler) Drain(_ context.Context, r *agentv2.DrainRequest)       { h.drained <- r }
func (h *hookHandler) Shutdown(_ context.Context, r *agentv2.ShutdownRequest) { h.shutdown <- r }

func TestDrainAndShutdownNotices(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		h := &hookHandler{drained: make(chan *agentv2.DrainRequest, 1), shutdown: make(chan *agentv2.ShutdownRequest, 1)}
		e := start(t, h)
		c := e.dialReady()
		c.Send(&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Drain{Drain: &agentv2.DrainRequest{
			DurationMs: 1000, Reason: agentv2.DrainRequest_REASON_MAINTENANCE,
		}}})
		c.recv(func(m *agentv2.AgentToProxy) bool {
			return m.GetHealth().GetState() == agentv2.HealthState_HEALTH_STATE_DRAINING
		})
		select {
		case r := <-h.drained:
			assert.Equal(t, agentv2.DrainRequest_REASON_MAINTENANCE, r.GetReason())
		case <-time.After(waitTimeout):
			t.Fatal("drain hook not called")
		}
		c.Send(&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Shutdown{Shutdown: &agentv2.ShutdownRequest{Reason: agentv2.ShutdownRequest_REASON_UPGRADE}}})
		select {
		case r := <-h.shutdown:
			assert.Equal(t, agentv2.ShutdownRequest_REASON_UPGRADE, r.GetReason())
		case <-time.After(waitTimeout):
			t.Fatal("shutdown hook not called")
		}
		// Still serving.
		c.Send(requestHeaders(1, "r"))
		assert.NotNil(t, c.response().GetResponse().GetAllow())
	})
}

func TestUnknownMessageSkipped(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		e := start(t, Base{})
		c := e.dialReady()
		if c.raw != nil {
			// An unknown frame type with an arbitrary payload.
			_, err := c.raw.Write([]byte{0, 0, 0, 4, 0x7f, 1, 2, 3})
			require.NoError(t, err)
		} else {
			// A message with no case set, as a newer proxy's unknown case decodes.
			c.Send(&agentv2.ProxyToAgent{EventId: 3})
		}
		c.Send(requestHeaders(1, "r"))
		assert.EqualValues(t, 1, c.response().EventId)
		eventually(t, func() bool {
			e.srv.mu.Lock()
			defer e.srv.mu.Unlock()
			return len(e.srv.sessions) == 1 && e.srv.sessions[0].stats.unknown.Load() == 1
		}, "unknown message not counted")
	})
}

func TestServerShutdownWaitsForInFlight(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		h := newBlockHandler()
		e := start(t, h)
		c := e.dialReady()
		c.Send(requestHeaders(1, "r"))
		h.waitStarted(t, 1)
		shut := make(chan error, 1)
		go func() { shut <- e.srv.Shutdown(context.Background()) }()
		c.recv(func(m *agentv2.AgentToProxy) bool {
			return m.GetHealth().GetState() == agentv2.HealthState_HEALTH_STATE_DRAINING
		})
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with an event in flight", err)
		case <-time.After(20 * time.Millisecond):
		}
		close(h.release)
		r := c.response()
		assert.EqualValues(t, 1, r.EventId)
		assert.NotNil(t, r.GetResponse().GetAllow())
		select {
		case err := <-shut:
			require.NoError(t, err)
		case <-time.After(waitTimeout):
			t.Fatal("Shutdown did not return")
		}
		c.waitClosed()
	})
}

func TestServerShutdownDeadline(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		h := newBlockHandler()
		e := start(t, h)
		c := e.dialReady()
		c.Send(requestHeaders(1, "r"))
		h.waitStarted(t, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		err := e.srv.Shutdown(ctx)
		assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err))
		// Close cancelled the handler.
		assert.Error(t, <-h.causes)
		c.waitClosed()
		e.srv.Close()
	})
}

func TestPerRequestFlowControl(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		h := &orderHandler{release: make(chan struct{}), started: make(chan string, 1000), seen: map[string][]uint32{}, active: map[string]bool{}}
		e := start(t, h, WithMaxQueuedPerRequest(4))
		c := e.dialReady()
		// Chunk 0 of "slow" blocks; four more queue behind it.
		for i := range uint32(5) {
			c.Send(bodyChunk(uint64(i+1), "slow", i))
		}
		fc := c.recv(isFlow).GetFlowControl()
		assert.Equal(t, agentv2.FlowAction_FLOW_ACTION_PAUSE, fc.GetAction())
		assert.Equal(t, "slow", fc.GetCorrelationId())
		// Other requests go on.
		c.Send(bodyChunk(10, "other", 0))
		assert.EqualValues(t, 10, c.response().EventId)
		close(h.release)
		answered, resumed := 0, false
		for answered < 5 || !resumed {
			m := c.recv(nil)
			switch {
			case m.GetResponse() != nil:
				answered++
			case m.GetFlowControl() != nil:
				require.False(t, resumed, "second flow-control signal")
				assert.Equal(t, agentv2.FlowAction_FLOW_ACTION_RESUME, m.GetFlowControl().GetAction())
				assert.Equal(t, "slow", m.GetFlowControl().GetCorrelationId())
				resumed = true
			}
		}
	})
}
