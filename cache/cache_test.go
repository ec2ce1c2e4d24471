package cache_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/cache"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// adminPolicy blocks /admin and allows the rest with a header mutation,
// both cacheable for a minute by method and path.
func adminPolicy(ev *agentv2.RequestHeadersEvent) *agentv2.AgentResponse {
	var r *agentv2.AgentResponse
	if strings.HasPrefix(ev.GetUri(), "/admin") {
		r = agent.Block(403, "no")
		r.Audit = agent.Audit([]string{"admin"}, "rule-1")
	} else {
		r = agent.AllowSetRequestHeader("x-waf", "pass")
	}
	return agent.CacheFor(r, time.Minute, agent.ByMethod(), agent.ByPath())
}

func TestReplayIdentical(t *testing.T) {
	t.Parallel()
	pol := &policy{decide: adminPolicy}
	f := newFixture(t, pol)
	for _, uri := range []string{"/admin/x", "/shop"} {
		first := headersEvent("GET", uri)
		want, err := f.send(t, first)
		require.NoError(t, err)
		require.NotNil(t, want.GetCache(), "the agent's answer carries its directive")
		want.Cache = nil // replays leave it out: it is for the proxy
		for range 3 {
			ev := headersEvent("GET", uri+"?q=other") // the query is not in scope
			got, err := f.send(t, ev)
			require.NoError(t, err)
			assert.Equal(t, ev.GetRequestHeaders().GetMetadata().GetCorrelationId(), got.GetCorrelationId(), "the answer names the new request")
			got.CorrelationId = want.GetCorrelationId()
			assert.True(t, proto.Equal(want, got), "replayed %v, first %v", got, want)
		}
	}
	assert.Equal(t, int64(2), pol.calls.Load(), "one agent call per scope value")
	st := f.ic.Stats()["waf"]
	assert.Equal(t, uint64(6), st.Hits)
	assert.Equal(t, uint64(2), st.Misses)
}

func TestScopeRespected(t *testing.T) {
	t.Parallel()
	pol := &policy{decide: func(ev *agentv2.RequestHeadersEvent) *agentv2.AgentResponse {
		return agent.CacheFor(agent.Allow(), time.Minute, agent.ByPath(), agent.ByHeader("Authorization"))
	}}
	f := newFixture(t, pol)
	send := func(path string, hs ...string) {
		_, err := f.send(t, headersEvent("GET", path, hs...))
		require.NoError(t, err)
	}
	send("/a", "authorization", "alice")
	send("/a", "Authorization", "alice", "x-other", "1") // name case and other headers do not matter
	assert.Equal(t, int64(1), pol.calls.Load())
	send("/a", "authorization", "bob") // another value misses
	send("/a")                         // so does a missing header
	send("/a", "authorization", "")    // and an empty one is not a missing one
	send("/b", "authorization", "alice")
	send("/a", "authorization", "alice", "authorization", "x") // a second value
	assert.Equal(t, int64(6), pol.calls.Load())
	send("/a")
	assert.Equal(t, int64(6), pol.calls.Load(), "a missing header is a value of its own, cached too")
}

func TestTTLExpiry(t *testing.T) {
	t.Parallel()
	pol := &policy{decide: adminPolicy}
	f := newFixture(t, pol)
	for range 2 {
		_, err := f.send(t, headersEvent("GET", "/x"))
		require.NoError(t, err)
	}
	assert.Equal(t, int64(1), pol.calls.Load())
	f.clock.Advance(59 * time.Second)
	_, err := f.send(t, headersEvent("GET", "/x"))
	require.NoError(t, err)
	assert.Equal(t, int64(1), pol.calls.Load())
	f.clock.Advance(2 * time.Second)
	_, err = f.send(t, headersEvent("GET", "/x"))
	require.NoError(t, err)
	assert.Equal(t, int64(2), pol.calls.Load(), "expired: asked again")
}

func TestNotCacheable(t *testing.T) {
	t.Parallel()
	pol := &policy{decide: func(*agentv2.RequestHeadersEvent) *agentv2.AgentResponse { return agent.Allow() }}
	f := newFixture(t, pol)
	for range 3 {
		_, err := f.send(t, headersEvent("GET", "/x"))
		require.NoError(t, err)
	}
	assert.Equal(t, int64(3), pol.calls.Load())
}

// TestSingleFlight: 1,000 concurrent identical misses make one agent call
// when the answer is cacheable, and every request its own when it is not.

func TestSingleFlight(t *testing.T) {
	t.Parallel()
	for _, cacheable := range []bool{true, false} {
		pol := &policy{gate: make(chan struct{}), decide: func(ev *agentv2.RequestHeadersEvent) *agentv2.AgentResponse {
			if cacheable {
				return adminPolicy(ev)
			}
			return agent.Allow()
		}}
		f := newFixture(t, pol)
		n := 1000
		if !cacheable {
			n = 90 // all reach the agent at once: stay under the pool's concurrency limit
		}
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() {
				ev := headersEvent("GET", "/same")
				resp, err := f.send(t, ev)
				if err == nil && resp.GetCorrelationId() != ev.GetRequestHeaders().GetMetadata().GetCorrelationId() {
					err = assert.AnError
				}
				errs <- err
			})
		}
		require.Eventually(t, func() bool { return f.ic.Stats()["waf"].Joins >= uint64(n-1) }, 5*time.Second, time.Millisecond,
			"every request but the first waits for it")
		close(pol.gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		if cacheable {
			assert.Equal(t, int64(1), pol.calls.Load())
		} else {
			assert.Equal(t, int64(n), pol.calls.Load())
		}
	}
}

func TestStaleOnlyWhenUnavailable(t *testing.T) {
	t.Parallel()
	pol := &policy{decide: func(ev *agentv2.RequestHeadersEvent) *agentv2.AgentResponse {
		return agent.CacheFor(agent.Block(451, ""), time.Minute, agent.ByPath(), agent.StaleFor(time.Hour))
	}}
	f := newFixture(t, pol)
	_, err := f.send(t, headersEvent("GET", "/x"))
	require.NoError(t, err)
	f.clock.Advance(2 * time.Minute)
	_, err = f.send(t, headersEvent("GET", "/x"))
	require.NoError(t, err)
	assert.Equal(t, int64(2), pol.calls.Load(), "expired and the agent is up: asked")
	assert.Zero(t, f.ic.Stats()["waf"].StaleHits)

	f.stop()
	f.clock.Advance(2 * time.Minute)
	resp, err := f.send(t, headersEvent("GET", "/x"))
	require.NoError(t, err, "the agent is down: the stale block is served")
	assert.Equal(t, uint32(451), resp.GetBlock().GetStatus())
	assert.Equal(t, uint64(1), f.ic.Stats()["waf"].StaleHits)

	_, err = f.send(t, headersEvent("GET", "/other"))
	require.Error(t, err, "nothing cached for it: the failure stands")
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))

	f.clock.Advance(2 * time.Hour)
	_, err = f.send(t, headersEvent("GET", "/x"))
	require.Error(t, err, "past the stale window: the failure stands")
}

func TestPurgeByAgent(t *testing.T) {
	t.Parallel()
	pol := &policy{decide: func(ev *agentv2.RequestHeadersEvent) *agentv2.AgentResponse {
		tag := strings.TrimPrefix(ev.GetUri(), "/")
		return agent.CacheFor(agent.Allow(), time.Minute, agent.ByPath(), agent.CacheTags(tag))
	}}
	f := newFixture(t, pol)
	warm := func() {
		for _, u := range []string{"/a", "/b"} {
			_, err := f.send(t, headersEvent("GET", u))
			require.NoError(t, err)
		}
	}
	warm()
	warm()
	require.Equal(t, int64(2), pol.calls.Load())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, f.srv.PurgeCache(ctx, "a"))
	warm()
	assert.Equal(t, int64(3), pol.calls.Load(), "only /a was purged")
	require.NoError(t, f.srv.PurgeCache(ctx))
	warm()
	assert.Equal(t, int64(5), pol.calls.Load(), "everything was purged")
	warm()
	assert.Equal(t, int64(5), pol.calls.Load())
}

func TestBodies(t *testing.T) {
	t.Parallel()
	for _, notInspected := range []bool{false, true} {
		pol := &policy{decide: func(ev *agentv2.RequestHeadersEvent) *agentv2.AgentResponse {
			opts := []agent.CacheOption{agent.ByPath()}
			if notInspected {
				opts = append(opts, agent.BodyNotInspected())
			}
			return agent.CacheFor(agent.Allow(), time.Minute, opts...)
		}}
		f := newFixture(t, pol)
		for range 3 {
			ev := headersEvent("POST", "/upload", "content-length", "5")
			_, err := f.send(t, ev)
			require.NoError(t, err)
			cid := ev.GetRequestHeaders().GetMetadata().GetCorrelationId()
			chunk := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{CorrelationId: cid, Data: []byte("hello"), IsLast: true}}}
			resp, err := f.send(t, chunk)
			require.NoError(t, err)
			assert.NotNil(t, resp.GetAllow())
			assert.Equal(t, cid, resp.GetCorrelationId())
			done := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{CorrelationId: cid}}}
			_, err = f.send(t, done)
			require.NoError(t, err)
		}
		if notInspected {
			assert.Equal(t, int64(1), pol.calls.Load(), "served from the cache")
			assert.Equal(t, int64(2), pol.bodies.Load(), "only the first request's body and completion reach the agent")
		} else {
			assert.Equal(t, int64(3), pol.calls.Load(), "a request with a body needs the agent")
			assert.Equal(t, int64(6), pol.bodies.Load())
		}
	}
}

// TestFlushOnConnect: with WithFlushOnConnect, a restarted agent's earlier
// decisions are not served; without it they are.
func TestFlushOnConnect(t *testing.T) {
	t.Parallel()
	for _, flush := range []bool{false, true} {
		pol := &policy{decide: adminPolicy}
		var opts []cache.Option
		if flush {
			opts = append(opts, cache.WithFlushOnConnect())
		}
		f := newFixture(t, pol, opts...)
		_, err := f.send(t, headersEvent("GET", "/x"))
		require.NoError(t, err)
		before := f.ic.Stats()["waf"].Purges
		// A connection completes a new handshake: close the pool's
		// connections from the agent side and wait for the redial.
		f.restartAgent(t)
		require.Eventually(t, func() bool {
			_, err := f.send(t, headersEvent("GET", "/y"))
			return err == nil
		}, 10*time.Second, 20*time.Millisecond)
		_, err = f.send(t, headersEvent("GET", "/x"))
		require.NoError(t, err)
		if flush {
			assert.Greater(t, f.ic.Stats()["waf"].Purges, before)
			assert.Equal(t, int64(3), pol.calls.Load(), "flushed: /x asked again")
		} else {
			assert.Equal(t, int64(2), pol.calls.Load(), "kept: /x served from the cache")
		}
	}
}
