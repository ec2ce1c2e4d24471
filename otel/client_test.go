package otel

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

var (
	agentWAF     = AgentIDKey.String("waf")
	transportUDS = TransportKey.String("uds")
)

func outcome(s string) attribute.KeyValue   { return OutcomeKey.String(s) }
func eventKind(s string) attribute.KeyValue { return EventKindKey.String(s) }

// assertChild checks that child's parent is parent's span.
func assertChild(t *testing.T, parent, child sdktrace.ReadOnlySpan) {
	t.Helper()
	assert.Equal(t, parent.SpanContext().TraceID(), child.SpanContext().TraceID(), "same trace")
	assert.Equal(t, parent.SpanContext().SpanID(), child.Parent().SpanID(), "%s is a child of %s", child.Name(), parent.Name())
}

func TestTraceSuccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{conns: 2})
	ctx, root := e.root()
	ev := headers("r1", "/allow")
	resp, err := e.pool.Send(ctx, "waf", ev)
	require.NoError(t, err)
	require.NotNil(t, resp.GetAllow())
	_, err = e.pool.Send(ctx, "waf", bodyChunk("r1"))
	require.NoError(t, err)
	_, err = e.pool.Send(ctx, "waf", complete("r1"))
	require.NoError(t, err)
	root.End()

	rootSpan := e.rec.Ended()[len(e.rec.Ended())-1]
	require.Equal(t, "proxy request", rootSpan.Name())
	for _, s := range e.rec.Ended() {
		assert.NotEqual(t, "agentwire.Dial", s.Name(), "dial spans are off without WithDialSpans")
	}

	// Proxy spans: children of the caller's span, with the RPC attributes.
	ch := e.span(trace.SpanKindClient, "RequestHeaders", "r1")
	assertChild(t, rootSpan, ch)
	assert.Equal(t, codes.Unset, ch.Status().Code)
	want := map[attribute.Key]attribute.Value{
		RPCSystemKey:     attribute.StringValue("agentwire"),
		RPCServiceKey:    attribute.StringValue(service),
		RPCMethodKey:     attribute.StringValue("RequestHeaders"),
		AgentIDKey:       attribute.StringValue("waf"),
		TransportKey:     attribute.StringValue("uds"),
		EventKindKey:     attribute.StringValue("request_headers"),
		CorrelationIDKey: attribute.StringValue("r1"),
		DecisionKey:      attribute.StringValue("allow"),
		RPCStatusCodeKey: attribute.IntValue(0),
	}
	for k, v := range want {
		assert.Equal(t, v, attrOf(ch, k), "proxy span attribute %s", k)
	}
	assert.NotEmpty(t, attrOf(ch, ConnIDKey).AsString())
	assert.Positive(t, attrOf(ch, EventIDKey).AsInt64())

	// The event carried the proxy span's trace context.
	md := ev.GetRequestHeaders().GetMetadata()
	assert.Equal(t, "00-"+ch.SpanContext().TraceID().String()+"-"+ch.SpanContext().SpanID().String()+"-01", md.GetTraceparent())

	// Agent spans: the headers span is the proxy headers span's child; the
	// later events (no trace context on the wire) join under the same
	// proxy span.
	sh := e.span(trace.SpanKindServer, "RequestHeaders", "r1")
	assertChild(t, ch, sh)
	assert.True(t, sh.Parent().IsRemote())
	assert.Equal(t, attribute.StringValue("agentwire"), attrOf(sh, RPCSystemKey))
	assert.Equal(t, attribute.StringValue("allow"), attrOf(sh, DecisionKey))
	assert.Equal(t, attribute.StringValue("agentwire"), attrOf(sh, ProxyIDKey), "proxy id from the handshake")
	for _, m := range []string{"RequestBodyChunk", "RequestComplete"} {
		s := e.span(trace.SpanKindServer, m, "r1")
		assertChild(t, ch, s)
		assert.Equal(t, attribute.StringValue("request_headers"), attrOf(s, ParentEventKindKey))
		c := e.span(trace.SpanKindClient, m, "r1")
		assertChild(t, rootSpan, c)
		// Handler code gets a context carrying the agent span.
		assert.Equal(t, s.SpanContext().SpanID(), e.h.handlerSpan("r1", m).SpanID())
	}
	assert.Equal(t, sh.SpanContext().SpanID(), e.h.handlerSpan("r1", "RequestHeaders").SpanID())
	assert.Zero(t, e.ic.cache.len(), "request_complete forgets the request")

	rm := e.collect()
	n, ok := intValue(rm, MetricClientEvents, agentWAF, transportUDS, eventKind("request_headers"), outcome("allow"))
	require.True(t, ok)
	assert.EqualValues(t, 1, n)
	assert.EqualValues(t, 3, histCount(rm, MetricClientDuration, agentWAF, transportUDS, outcome("allow")))
	inflight, ok := intValue(rm, MetricClientInFlight, agentWAF)
	require.True(t, ok)
	assert.Zero(t, inflight)
	assert.EqualValues(t, 3, histCount(rm, MetricServerDuration, outcome("allow")))
	require.Eventually(t, func() bool {
		n, _ := intValue(e.collect(), MetricClientConnections, agentWAF, ConnStateKey.String("ready"))
		return n == 2
	}, waitFor, 5*time.Millisecond, "two ready connections")
}

func TestTraceBlockDecision(t *testing.T) {
	t.Parallel()
	for _, blockIsError := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "WithBlockAsError"}[blockIsError], func(t *testing.T) {
			t.Parallel()
			var opts []Option
			if blockIsError {
				opts = append(opts, WithBlockAsError())
			}
			e := newEnv(t, envConfig{pcOpts: opts, icOpts: opts})
			ctx, root := e.root()
			resp, err := e.pool.Send(ctx, "waf", headers("b1", "/block"))
			root.End()
			require.NoError(t, err)
			require.Equal(t, uint32(403), resp.GetBlock().GetStatus())

			for _, kind := range []trace.SpanKind{trace.SpanKindClient, trace.SpanKindServer} {
				s := e.span(kind, "RequestHeaders", "b1")
				assert.Equal(t, attribute.StringValue("block"), attrOf(s, DecisionKey))
				assert.Equal(t, attribute.IntValue(403), attrOf(s, BlockStatusKey))
				assert.Equal(t, attribute.IntValue(0), attrOf(s, RPCStatusCodeKey))
				if blockIsError {
					assert.Equal(t, codes.Error, s.Status().Code)
				} else {
					assert.Equal(t, codes.Unset, s.Status().Code)
				}
			}
			assertChild(t, e.span(trace.SpanKindClient, "RequestHeaders", "b1"), e.span(trace.SpanKindServer, "RequestHeaders", "b1"))
			assert.Zero(t, e.ic.cache.len(), "a block ends the request")
			rm := e.collect()
			n, _ := intValue(rm, MetricClientEvents, agentWAF, outcome("block"))
			assert.EqualValues(t, 1, n)
			assert.EqualValues(t, 1, histCount(rm, MetricServerDuration, outcome("block")))
		})
	}
}

func TestTraceTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ctx, root := e.root()
	ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err := e.pool.Send(ctx, "waf", headers("t1", "/slow"))
	root.End()
	require.Error(t, err)
	require.Equal(t, agentwire.CodeDeadlineExceeded, codeOf(err))

	c := e.span(trace.SpanKindClient, "RequestHeaders", "t1")
	assert.Equal(t, codes.Error, c.Status().Code)
	assert.Contains(t, c.Status().Description, "deadline_exceeded")
	assert.Equal(t, attribute.IntValue(int(agentwire.CodeDeadlineExceeded)), attrOf(c, RPCStatusCodeKey))
	assert.False(t, attrOf(c, DecisionKey).Type() == attribute.STRING, "no decision")

	// The agent still runs the handler (the proxy sent no cancel); its span
	// ends, under the proxy's, when the handler returns.
	e.h.releaseAll()
	s := e.span(trace.SpanKindServer, "RequestHeaders", "t1")
	assertChild(t, c, s)

	rm := e.collect()
	n, _ := intValue(rm, MetricClientEvents, agentWAF, outcome("deadline_exceeded"))
	assert.EqualValues(t, 1, n)
	assert.EqualValues(t, 1, histCount(rm, MetricClientDuration, agentWAF, outcome("deadline_exceeded")))
}

func TestTraceCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})

	// The caller gives up: the proxy span ends Canceled.
	ctx, root := e.root()
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		<-e.h.started
		cancel()
	}()
	_, err := e.pool.Send(cctx, "waf", headers("c1", "/slow"))
	require.Equal(t, agentwire.CodeCanceled, codeOf(err))
	c := e.span(trace.SpanKindClient, "RequestHeaders", "c1")
	assert.Equal(t, codes.Error, c.Status().Code)
	assert.Equal(t, attribute.IntValue(int(agentwire.CodeCanceled)), attrOf(c, RPCStatusCodeKey))

	// Pool.Cancel tells the agent: its handler's context is cancelled, and
	// the agent span records Canceled without marking itself an error (the
	// caller's decision, not the agent's failure).
	done := make(chan error, 1)
	go func() {
		_, err := e.pool.Send(ctx, "waf", headers("c2", "/slow"))
		done <- err
	}()
	require.Equal(t, "c2", <-e.h.started)
	require.NoError(t, e.pool.Cancel(ctx, "waf", &agentv2.CancelRequest{CorrelationId: "c2", Reason: agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT}))
	require.Equal(t, agentwire.CodeCanceled, codeOf(<-done))
	root.End()
	s := e.span(trace.SpanKindServer, "RequestHeaders", "c2")
	assert.Equal(t, attribute.IntValue(int(agentwire.CodeCanceled)), attrOf(s, RPCStatusCodeKey))
	assert.Equal(t, codes.Unset, s.Status().Code)
	c2 := e.span(trace.SpanKindClient, "RequestHeaders", "c2")
	assertChild(t, c2, s)
	assert.Equal(t, codes.Error, c2.Status().Code)

	// The pool records an event's end right after its caller returns.
	require.Eventually(t, func() bool {
		n, _ := intValue(e.collect(), MetricClientEvents, agentWAF, outcome("canceled"))
		return n == 2
	}, waitFor, 5*time.Millisecond)
	require.Eventually(t, func() bool {
		return histCount(e.collect(), MetricServerDuration, outcome("canceled")) >= 1
	}, waitFor, 5*time.Millisecond)
}

func TestTraceDeadAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ctx, root := e.root()
	defer root.End()

	// The agent dies with an event in flight.
	done := make(chan error, 1)
	go func() {
		_, err := e.pool.Send(ctx, "waf", headers("d1", "/slow"))
		done <- err
	}()
	<-e.h.started
	e.agent.kill()
	err := <-done
	require.Equal(t, agentwire.CodeUnavailable, codeOf(err), "%v", err)
	c := e.span(trace.SpanKindClient, "RequestHeaders", "d1")
	assert.Equal(t, codes.Error, c.Status().Code)
	assert.Equal(t, attribute.IntValue(int(agentwire.CodeUnavailable)), attrOf(c, RPCStatusCodeKey))
	assert.Equal(t, attribute.StringValue("uds"), attrOf(c, TransportKey))

	// With the agent gone, events fail before reaching a connection.
	require.Eventually(t, func() bool {
		_, err := e.pool.Send(ctx, "waf", headers("d2", "/allow"))
		return err != nil && codeOf(err) == agentwire.CodeUnavailable
	}, waitFor, 5*time.Millisecond)
	c2 := e.span(trace.SpanKindClient, "RequestHeaders", "d2")
	assert.Equal(t, codes.Error, c2.Status().Code)
	rm := e.collect()
	n, _ := intValue(rm, MetricClientEvents, agentWAF, outcome("unavailable"))
	assert.GreaterOrEqual(t, n, int64(2))
	// The connection's end reaches the gauge when the pool removes it,
	// which may follow the failed sends by a moment.
	require.Eventually(t, func() bool {
		ready, _ := intValue(e.collect(), MetricClientConnections, agentWAF, ConnStateKey.String("ready"))
		return ready == 0
	}, waitFor, 5*time.Millisecond, "the dead connection still counts as ready")

	// It comes back: the pool reconnects, and says so.
	e.agent.start()
	require.Eventually(t, func() bool {
		rm := e.collect()
		ready, _ := intValue(rm, MetricClientConnections, agentWAF, ConnStateKey.String("ready"))
		re, _ := intValue(rm, MetricClientReconnects, agentWAF)
		return ready == 1 && re == 1
	}, waitFor, 10*time.Millisecond)
	_, err = e.pool.Send(ctx, "waf", headers("d3", "/allow"))
	require.NoError(t, err)
	assertChild(t, e.span(trace.SpanKindClient, "RequestHeaders", "d3"), e.span(trace.SpanKindServer, "RequestHeaders", "d3"))
}

func TestAffinityMiss(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	// A body chunk of a request the pool never saw: affinity miss.
	ctx := context.Background()
	_, err := e.pool.Send(ctx, "waf", bodyChunk("stray"))
	require.NoError(t, err)
	s := e.span(trace.SpanKindClient, "RequestBodyChunk", "stray")
	assert.True(t, hasEvent(s, EventAffinityMiss))
	n, _ := intValue(e.collect(), MetricClientAffinityMiss, agentWAF)
	assert.EqualValues(t, 1, n)
}

func TestFlowControlFailOpen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{
		agentOpts: []agent.Option{agent.WithMaxConcurrency(1)},
		poolOpts:  []pool.Option{pool.WithFlowControl(pool.FailOpen, 0), pool.WithMaxConcurrency(10, 0)},
	})
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := e.pool.Send(ctx, "waf", headers("f1", "/slow"))
		done <- err
	}()
	<-e.h.started
	// One event in flight at max concurrency 1: the agent pauses.
	require.Eventually(t, func() bool {
		st, err := e.pool.AgentStats("waf")
		return err == nil && len(st.Conns) == 1 && st.Conns[0].State == pool.ConnPaused
	}, waitFor, 5*time.Millisecond, "agent never paused")
	resp, err := e.pool.Send(ctx, "waf", headers("f2", "/allow"))
	require.NoError(t, err)
	require.NotNil(t, resp.GetAllow())
	e.h.releaseAll()
	require.NoError(t, <-done)

	s := e.span(trace.SpanKindClient, "RequestHeaders", "f2")
	flow := eventOf(s, EventFlowControl)
	require.NotNil(t, flow)
	assert.ElementsMatch(t, []attribute.KeyValue{FlowModeKey.String("fail_open"), FlowResultKey.String("fail_open"),
		FlowWaitedKey.Float64(0)}, flow.Attributes)
	assert.True(t, hasEvent(s, EventFailOpen))
	assert.Equal(t, attribute.StringValue("allow"), attrOf(s, DecisionKey))
	assert.Nil(t, findSpan(e.rec.Ended(), trace.SpanKindServer, "RequestHeaders", "f2"), "the agent never saw f2")
	rm := e.collect()
	n, _ := intValue(rm, MetricClientFlowControl, agentWAF, FlowModeKey.String("fail_open"), FlowResultKey.String("fail_open"))
	assert.EqualValues(t, 1, n)
	n, _ = intValue(rm, MetricClientFailOpen, agentWAF)
	assert.EqualValues(t, 1, n)
	n, _ = intValue(rm, MetricClientEvents, agentWAF, outcome("fail_open"))
	assert.EqualValues(t, 1, n)
}

func TestFlowControlWaitRejected(t *testing.T) {
	t.Parallel()
	const wait = 30 * time.Millisecond
	e := newEnv(t, envConfig{
		agentOpts: []agent.Option{agent.WithMaxConcurrency(1)},
		poolOpts:  []pool.Option{pool.WithFlowControl(pool.WaitAndRetry, wait), pool.WithMaxConcurrency(10, 0)},
	})
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := e.pool.Send(ctx, "waf", headers("w1", "/slow"))
		done <- err
	}()
	<-e.h.started
	require.Eventually(t, func() bool {
		st, err := e.pool.AgentStats("waf")
		return err == nil && len(st.Conns) == 1 && st.Conns[0].State == pool.ConnPaused
	}, waitFor, 5*time.Millisecond, "agent never paused")
	_, err := e.pool.Send(ctx, "waf", headers("w2", "/allow"))
	require.ErrorIs(t, err, pool.ErrPaused)
	e.h.releaseAll()
	require.NoError(t, <-done)

	s := e.span(trace.SpanKindClient, "RequestHeaders", "w2")
	flow := eventOf(s, EventFlowControl)
	require.NotNil(t, flow)
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range flow.Attributes {
		attrs[kv.Key] = kv.Value
	}
	assert.Equal(t, "wait_and_retry", attrs[FlowModeKey].AsString())
	assert.Equal(t, "rejected", attrs[FlowResultKey].AsString())
	assert.GreaterOrEqual(t, attrs[FlowWaitedKey].AsFloat64(), float64(wait/time.Millisecond))
	assert.False(t, flow.Time.Before(s.StartTime().Add(wait)), "dated when the wait ended")
	assert.Equal(t, codes.Error, s.Status().Code)
	n, _ := intValue(e.collect(), MetricClientFlowControl, agentWAF, FlowModeKey.String("wait_and_retry"), FlowResultKey.String("rejected"))
	assert.EqualValues(t, 1, n)
}

func TestInFlightMetric(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	inFlight := func() int64 {
		n, _ := intValue(e.collect(), MetricClientInFlight, agentWAF)
		return n
	}
	done := make(chan error, 2)
	for _, cid := range []string{"f1", "f2"} {
		go func() {
			_, err := e.pool.Send(context.Background(), "waf", headers(cid, "/slow"))
			done <- err
		}()
		<-e.h.started
	}
	assert.EqualValues(t, 2, inFlight(), "two events wait for the agent")
	e.h.releaseAll()
	for range 2 {
		require.NoError(t, <-done)
	}
	assert.Zero(t, inFlight())
}
