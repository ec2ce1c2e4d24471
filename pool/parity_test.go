package pool

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire"
	sdk "github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
)

const (
	evHeaders  = agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS
	evBody     = agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK
	evRspHdrs  = agentv2.EventType_EVENT_TYPE_RESPONSE_HEADERS
	evComplete = agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE
)

func capsOf(t *testing.T, p *Pool, id string) Capabilities {
	t.Helper()
	c, err := p.Capabilities(id)
	require.NoError(t, err)
	return c
}

func readiness(t *testing.T, p *Pool, id string) Readiness {
	t.Helper()
	r, err := p.Ready(id)
	require.NoError(t, err)
	return r
}

// TestCapabilitiesAgreement: instances that disagree (a rolling upgrade)
// agree on what they all declared; each connection's own declaration is
// in its stats; with no ready connection the last agreement stays.
func TestCapabilitiesAgreement(t *testing.T) {
	t.Parallel()
	p := newTestPool(t)
	c1, c2 := newMemConn(), newMemConn()
	c1.caps = &agentv2.AgentCapabilities{ProtocolVersion: 2, Name: "waf", Version: "1",
		SupportedEvents: []agentv2.EventType{evHeaders, evBody, evRspHdrs},
		Features:        &agentv2.AgentFeatures{StreamingBody: true, Cancellation: true, ConcurrentRequests: 64},
		Limits:          &agentv2.AgentLimits{MaxBodySize: 1 << 20, MaxConcurrency: 100}}
	c2.caps = &agentv2.AgentCapabilities{ProtocolVersion: 2, Name: "waf", Version: "2",
		SupportedEvents: []agentv2.EventType{evRspHdrs, evHeaders, evComplete},
		Features:        &agentv2.AgentFeatures{Cancellation: true, ConcurrentRequests: 32},
		Limits:          &agentv2.AgentLimits{MaxConcurrency: 50, MaxMemory: proto.Uint64(10)}}
	require.NoError(t, p.AdoptConn("waf", c1))
	require.NoError(t, p.AdoptConn("waf", c2))

	want := &agentv2.AgentCapabilities{ProtocolVersion: 2, Name: "waf",
		SupportedEvents: []agentv2.EventType{evHeaders, evRspHdrs},
		Features:        &agentv2.AgentFeatures{Cancellation: true, ConcurrentRequests: 32},
		Limits:          &agentv2.AgentLimits{MaxBodySize: 1 << 20, MaxConcurrency: 50, MaxMemory: proto.Uint64(10)}}
	c := capsOf(t, p, "waf")
	assert.True(t, proto.Equal(want, c.Agreed), "%v", c.Agreed)
	assert.True(t, c.Handles(evHeaders))
	assert.True(t, c.Handles(evRspHdrs))
	assert.False(t, c.Handles(evBody), "only one instance takes bodies")
	assert.False(t, c.Handles(evComplete))
	s := stats(t, p, "waf")
	assert.True(t, proto.Equal(want, s.Capabilities))
	require.Len(t, s.Conns, 2)
	assert.True(t, proto.Equal(c1.caps, s.Conns[0].Capabilities))
	assert.True(t, proto.Equal(c2.caps, s.Conns[1].Capabilities))

	require.NoError(t, c2.Close(context.Background()))
	require.Eventually(t, func() bool { return capsOf(t, p, "waf").Agreed.GetVersion() == "1" }, 5*time.Second, time.Millisecond)
	assert.True(t, capsOf(t, p, "waf").Handles(evBody))
	assert.Equal(t, Ready, readiness(t, p, "waf"))

	require.NoError(t, c1.Close(context.Background()))
	require.Eventually(t, func() bool { return readiness(t, p, "waf") == NotReadyNoConn }, 5*time.Second, time.Millisecond)
	assert.True(t, proto.Equal(c1.caps, capsOf(t, p, "waf").Agreed), "the last agreement stays")

	_, err := p.Capabilities("nobody")
	assert.ErrorIs(t, err, ErrUnknownAgent)
	_, err = p.Ready("nobody")
	assert.Equal(t, agentwire.CodeNotFound, agentwire.CodeOf(err))
}

// TestCapabilitiesOfOlderAgents: an agent that lists no event types takes
// the eight kinds every v2 agent knows, not kinds added since.
func TestCapabilitiesOfOlderAgents(t *testing.T) {
	t.Parallel()
	p := newTestPool(t)
	require.NoError(t, p.AdoptConn("old", newMemConn()))
	c := capsOf(t, p, "old")
	for ev := evHeaders; ev <= agentv2.EventType_EVENT_TYPE_CONFIGURE; ev++ {
		assert.True(t, c.Handles(ev), "%v", ev)
	}
	assert.False(t, c.Handles(agentv2.EventType(20)))
	assert.False(t, c.Handles(agentv2.EventType_EVENT_TYPE_UNSPECIFIED))
	assert.True(t, Capabilities{}.Handles(evBody), "unknown: the eight kinds")
}

// TestCapabilitiesAfterUpgrade: the agent restarts on the same socket
// declaring less; once the pool reconnects, the agreement is the new one.
func TestCapabilitiesAfterUpgrade(t *testing.T) {
	t.Parallel()
	ua := newUnixAgent(t, newRecorder("a"), sdk.WithVersion("1"), sdk.WithSupportedEvents(evHeaders, evBody))
	p := newTestPool(t, WithConnections(2))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	require.Eventually(t, func() bool { return len(stats(t, p, "waf").Conns) == 2 }, 5*time.Second, time.Millisecond)
	c := capsOf(t, p, "waf")
	assert.Equal(t, "1", c.Agreed.GetVersion())
	assert.True(t, c.Handles(evBody))

	ua.kill()
	require.Eventually(t, func() bool { return readiness(t, p, "waf") == NotReadyNoConn }, 5*time.Second, time.Millisecond)
	assert.Equal(t, "1", capsOf(t, p, "waf").Agreed.GetVersion(), "the last agreement stays while down")

	ua.opts = append(ua.opts, sdk.WithVersion("2"), sdk.WithSupportedEvents(evHeaders))
	ua.start()
	require.Eventually(t, func() bool { return capsOf(t, p, "waf").Agreed.GetVersion() == "2" }, 5*time.Second, time.Millisecond)
	c = capsOf(t, p, "waf")
	assert.True(t, c.Handles(evHeaders))
	assert.False(t, c.Handles(evBody))
	assert.Equal(t, Ready, readiness(t, p, "waf"))
	for _, cs := range stats(t, p, "waf").Conns {
		assert.Equal(t, "2", cs.Capabilities.GetVersion())
	}
}

// TestReadiness: draining and paused agents are not ready.
func TestReadiness(t *testing.T) {
	t.Parallel()
	p := newTestPool(t)
	c := newMemConn()
	require.NoError(t, p.AdoptConn("waf", c))
	assert.Equal(t, Ready, readiness(t, p, "waf"))
	c.setStatus(transport.Status{State: transport.StatePaused})
	p.lookup("waf").poll()
	assert.Equal(t, NotReadyPaused, readiness(t, p, "waf"))
	c.setStatus(transport.Status{State: transport.StateReady})
	p.lookup("waf").poll()
	assert.Equal(t, Ready, readiness(t, p, "waf"))
	p.lookup("waf").draining.Store(true)
	assert.Equal(t, NotReadyDraining, readiness(t, p, "waf"))
	assert.Equal(t, "draining", NotReadyDraining.String())
}

// TestReadAccessorsDoNotAllocate: Capabilities and Ready are cheap enough
// to call per request.
func TestReadAccessorsDoNotAllocate(t *testing.T) {
	p := newTestPool(t)
	require.NoError(t, p.AdoptConn("waf", newMemConn()))
	allocs := testing.AllocsPerRun(100, func() {
		c, _ := p.Capabilities("waf")
		_ = c.Handles(evBody)
		_, _ = p.Ready("waf")
	})
	assert.Zero(t, allocs)
}

func BenchmarkCapabilities(b *testing.B) {
	p, err := New()
	require.NoError(b, err)
	defer p.Close()
	require.NoError(b, p.AdoptConn("waf", newMemConn()))
	b.ReportAllocs()
	for b.Loop() {
		c, _ := p.Capabilities("waf")
		_ = c.Handles(evBody)
	}
}

func BenchmarkReady(b *testing.B) {
	p, err := New()
	require.NoError(b, err)
	defer p.Close()
	require.NoError(b, p.AdoptConn("waf", newMemConn()))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = p.Ready("waf")
	}
}

// TestCancelAll: every request in flight on every connection of the agent
// fails with Canceled, each connection hears one cancel for all its
// requests, and the requests' later events fail; new requests go on.
func TestCancelAll(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		held    int
		cancels = map[int32]*agentv2.CancelRequest{}
		nconn   atomic.Int32
	)
	peer, err := testagent.ListenFramedPeer(filepath.Join(shortTempDir(t), "a.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
		return func(c *testagent.PeerConn) {
			n := nconn.Add(1)
			if c.Accept("waf") != nil {
				return
			}
			for {
				m, err := c.Recv()
				if err != nil {
					return
				}
				corr, _ := m.EventCorrelationID()
				switch {
				case m.GetPing() != nil:
					_ = c.Send(&agentv2.AgentToProxy{EventId: m.GetEventId(), Message: &agentv2.AgentToProxy_Pong{
						Pong: &agentv2.Pong{Sequence: m.GetPing().GetSequence()}}})
				case m.GetCancel() != nil:
					mu.Lock()
					cancels[n] = m.GetCancel()
					mu.Unlock()
				case strings.HasPrefix(corr, "hold"):
					mu.Lock()
					held++
					mu.Unlock()
				case m.EventType() != agentv2.EventType_EVENT_TYPE_UNSPECIFIED:
					_ = c.Reply(m, nil)
				}
			}
		}
	})
	require.NoError(t, err)
	t.Cleanup(peer.Close)
	p := newTestPool(t, WithConnections(2))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", peer.Endpoint()))
	require.Eventually(t, func() bool { return len(stats(t, p, "waf").Conns) == 2 }, 5*time.Second, time.Millisecond)

	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			_, err := p.Send(ctx, "waf", headers("hold-"+itoa(i)))
			errs <- err
		}()
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return held == 4 }, 5*time.Second, time.Millisecond)

	_, err = p.CancelAll(ctx, "waf", &agentv2.CancelRequest{CorrelationId: "hold-0"})
	assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err))
	told, err := p.CancelAll(ctx, "waf", &agentv2.CancelRequest{Reason: agentv2.CancelReason_CANCEL_REASON_PROXY_SHUTDOWN})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{stats(t, p, "waf").Conns[0].ID, stats(t, p, "waf").Conns[1].ID}, told)
	for range 4 {
		err := <-errs
		assert.Equal(t, agentwire.CodeCanceled, agentwire.CodeOf(err), "%v", err)
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(cancels) == 2 }, 5*time.Second, time.Millisecond)
	mu.Lock()
	for _, c := range cancels {
		assert.Empty(t, c.GetCorrelationId())
		assert.Equal(t, agentv2.CancelReason_CANCEL_REASON_PROXY_SHUTDOWN, c.GetReason())
	}
	mu.Unlock()
	s := stats(t, p, "waf")
	assert.Zero(t, s.OpenRequests)
	assert.Equal(t, 4, s.LostRequests)
	_, err = p.Send(ctx, "waf", requestBody("hold-0", 0, true))
	assert.ErrorIs(t, err, ErrAffinityLost)
	require.NoError(t, sendRequest(ctx, p, "waf", "ok-1"))

	_, err = p.CancelAll(ctx, "nobody", &agentv2.CancelRequest{})
	assert.ErrorIs(t, err, ErrUnknownAgent)
}
