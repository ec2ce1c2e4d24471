package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// servePeer answers every connection of a peer normally.
func servePeer(c *testagent.PeerConn) {
	if c.Accept("peer") == nil {
		c.Serve()
	}
}

// TestAgentClosesMidFrame: one of a pool's two connections to an agent
// dies in the middle of a response frame, under concurrent load. The calls
// on it fail with a typed error (Unavailable, the peer gone: the frame
// truncated or the socket reset), and so do later events of requests that were on it (affinity
// lost); the other connection carries on untouched, and the pool replaces
// the dead one.
func TestAgentClosesMidFrame(t *testing.T) {
	t.Parallel()
	var accepted atomic.Int32
	peer, err := testagent.ListenFramedPeer(filepath.Join(shortDir(t), "peer.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
		if accepted.Add(1) != 2 {
			return servePeer
		}
		return afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			time.Sleep(20 * time.Millisecond) // let calls pile up on this connection
			frame, err := codec.AppendFrame(nil, testagent.Response(ev, nil), 0)
			if err != nil {
				return err
			}
			_ = c.WriteBytes(frame[:len(frame)-3])
			c.Close()
			return errors.New("closed mid-frame")
		})
	})
	require.NoError(t, err)
	defer peer.Close()

	p := newTestPool(t, pool.WithConnections(2), pool.WithReconnectBackoff(10*time.Millisecond, 100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.AddAgent(ctx, "peer", peer.Endpoint()))
	eventually(t, 5*time.Second, "two connections", func() bool { return readyConns(p, "peer") == 2 })
	st, err := p.AgentStats("peer")
	require.NoError(t, err)
	ids := map[string]bool{}
	for _, c := range st.Conns {
		ids[c.ID] = true
	}

	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		ok, dead, lost int
		other          []error
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				corr := fmt.Sprintf("mf-%d-%d", w, i)
				for _, ev := range []*agentv2.ProxyToAgent{headersEvent(corr, "/"), completeEvent(corr)} {
					_, err := p.Send(ctx, "peer", ev)
					mu.Lock()
					switch {
					case err == nil:
						ok++
					case agentwire.CodeOf(err) == agentwire.CodeUnavailable && errors.Is(err, transport.ErrPeerGone):
						// The frame cut short, or the socket reset under it
						// (the agent closed it with events unread).
						dead++
					case agentwire.CodeOf(err) == agentwire.CodeFailedPrecondition && errors.Is(err, pool.ErrAffinityLost):
						lost++
					default:
						other = append(other, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	assert.Empty(t, other, "errors other than the dead connection's")
	assert.NotZero(t, dead, "no call was on the connection that died")
	assert.Greater(t, ok, 700, "the other connection should have carried the load")
	eventually(t, 5*time.Second, "the dead connection replaced", func() bool { return readyConns(p, "peer") == 2 })
	st, err = p.AgentStats("peer")
	require.NoError(t, err)
	survivors := 0
	for _, c := range st.Conns {
		if ids[c.ID] {
			survivors++
			assert.Zero(t, c.Transport.UnknownResponses+c.Transport.UnknownFrames)
		}
	}
	assert.Equal(t, 1, survivors, "the healthy connection should have been kept")
	figure(t, "midframe", "connection closed mid-frame under load: %d calls failed with Unavailable (peer gone), %d later events with affinity lost, %d served by the other connection", dead, lost, ok)
	faultsSurvived.Add(1)
}

// TestPauseForeverThroughPool: an agent pauses its connections and never
// resumes. Depending on the flow-control mode, calls fail at once, fail
// after the bounded wait, or are answered without the agent; none hangs.
// With one connection paused and another ready, everything goes to the
// ready one.
func TestPauseForeverThroughPool(t *testing.T) {
	t.Parallel()
	pauser := func(c *testagent.PeerConn) {
		if c.Accept("paused") != nil {
			return
		}
		_ = c.Send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_FlowControl{FlowControl: &agentv2.FlowControlSignal{
			Action: agentv2.FlowAction_FLOW_ACTION_PAUSE}}})
		c.Serve()
	}
	const wait = 150 * time.Millisecond
	for _, tt := range []struct {
		name   string
		mode   pool.FlowControlMode
		conns  int
		paused int // how many of the connections pause
		check  func(t *testing.T, resp *agentv2.AgentResponse, err error, took time.Duration)
	}{
		{"FailClosed", pool.FailClosed, 2, 2, func(t *testing.T, _ *agentv2.AgentResponse, err error, took time.Duration) {
			assert.ErrorIs(t, err, pool.ErrPaused)
			assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(err))
			assert.Less(t, took, wait)
		}},
		{"WaitAndRetry", pool.WaitAndRetry, 2, 2, func(t *testing.T, _ *agentv2.AgentResponse, err error, took time.Duration) {
			assert.ErrorIs(t, err, pool.ErrPaused)
			assert.GreaterOrEqual(t, took, wait*9/10)
			assert.Less(t, took, wait+500*time.Millisecond)
		}},
		{"FailOpen", pool.FailOpen, 2, 2, func(t *testing.T, resp *agentv2.AgentResponse, err error, took time.Duration) {
			require.NoError(t, err)
			assert.NotNil(t, resp.GetAllow())
		}},
		{"OneOfTwoPaused", pool.FailClosed, 2, 1, func(t *testing.T, resp *agentv2.AgentResponse, err error, took time.Duration) {
			require.NoError(t, err)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			peer, err := testagent.ListenFramedPeer(filepath.Join(shortDir(t), "peer.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
				if int(n.Add(1)) <= tt.paused {
					return pauser
				}
				return servePeer
			})
			require.NoError(t, err)
			defer peer.Close()
			p := newTestPool(t, pool.WithConnections(tt.conns), pool.WithFlowControl(tt.mode, wait))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, p.AddAgent(ctx, "peer", peer.Endpoint()))
			eventually(t, 5*time.Second, "pauses seen", func() bool {
				st, _ := p.AgentStats("peer")
				paused := 0
				for _, c := range st.Conns {
					if c.State == pool.ConnPaused {
						paused++
					}
				}
				return len(st.Conns) == tt.conns && paused == tt.paused
			})
			for i := range 5 {
				corr := fmt.Sprintf("p-%d", i)
				start := time.Now()
				resp, err := p.Send(ctx, "peer", headersEvent(corr, "/"))
				tt.check(t, resp, err, time.Since(start))
				_, _ = p.Send(ctx, "peer", completeEvent(corr))
			}
			st, err := p.AgentStats("peer")
			require.NoError(t, err)
			assert.Zero(t, st.InFlight)
			assert.Zero(t, st.OpenRequests)
			faultsSurvived.Add(1)
		})
	}
}
