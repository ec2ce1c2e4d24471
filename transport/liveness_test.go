package transport_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// livenessPeer serves script on every connection of a scripted agent over
// transport tr (framed Unix socket or gRPC) and returns its endpoint. The
// scripts' release channel closes when the test ends, before the peer.
func livenessPeer(t *testing.T, tr string, script func(c *testagent.PeerConn, release <-chan struct{})) string {
	t.Helper()
	release := make(chan struct{})
	choose := func(*agentv2.ProxyToAgent) testagent.Script {
		return func(c *testagent.PeerConn) { script(c, release) }
	}
	var (
		peer *testagent.Peer
		err  error
	)
	if tr == transport.TransportGRPC {
		peer, err = testagent.ListenGRPCPeer("127.0.0.1:0", choose)
	} else {
		peer, err = testagent.ListenFramedPeer(filepath.Join(shortTempDir(t), "a.sock"), choose)
	}
	require.NoError(t, err)
	t.Cleanup(peer.Close)
	t.Cleanup(func() { close(release) })
	return peer.Endpoint()
}

var livenessTransports = []string{transport.TransportUnix, transport.TransportGRPC}

// discardLogs keeps the connections' warnings out of the test output.
var discardLogs = transport.WithLogger(slog.New(slog.DiscardHandler))

// hangAfterFirst answers the first event, then stops reading and sending
// altogether, like a stopped process, until released.
func hangAfterFirst(c *testagent.PeerConn, release <-chan struct{}) {
	if c.Accept("hung") != nil {
		return
	}
	ev, err := c.RecvEvent()
	if err != nil || c.Reply(ev, nil) != nil {
		return
	}
	<-release
}

// TestLivenessHungAgent: an agent that stops sending anything with calls
// outstanding is pinged after the liveness interval and dropped once the
// timeout passes without a pong: the connection and every call fail at
// once with Unavailable (ErrUnresponsive), long before the call timeout.
func TestLivenessHungAgent(t *testing.T) {
	t.Parallel()
	for _, tr := range livenessTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			const interval, timeout = 100 * time.Millisecond, 200 * time.Millisecond
			endpoint := livenessPeer(t, tr, hangAfterFirst)
			c, err := transport.Dial(ctxT(t, 10*time.Second), endpoint, transport.WithLiveness(interval, timeout), discardLogs)
			require.NoError(t, err)
			defer c.Close(context.Background())
			_, err = c.Send(ctxT(t, 5*time.Second), bodyChunk("r", 0, "x"))
			require.NoError(t, err)

			const n = 3
			errs := sendAll(c, n, func(int) context.Context { return context.Background() })
			waitInFlight(t, c, n)
			start := time.Now()
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("a hung agent was not dropped")
			}
			took := time.Since(start)
			for range n {
				err := <-errs
				assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err), "%v", err)
				assert.ErrorIs(t, err, transport.ErrUnresponsive)
			}
			assert.ErrorIs(t, c.Err(), transport.ErrUnresponsive)
			assert.Contains(t, c.Err().Error(), "3 calls outstanding")
			// Silence is measured in ticks of interval/2; the calls went
			// out just after the last frame.
			assert.GreaterOrEqual(t, took, timeout, "dropped before the ping's timeout")
			assert.Less(t, took, interval+interval/2+timeout+300*time.Millisecond, "dropped late")
			t.Logf("dropped %v after the calls went out: %v", took.Round(time.Millisecond), c.Err())
		})
	}
}

// TestLivenessAnswersWithoutPongs: an agent that never answers pings but
// answers every event, each after longer than the liveness interval, is
// pinged and kept: any message proves it alive.
func TestLivenessAnswersWithoutPongs(t *testing.T) {
	t.Parallel()
	for _, tr := range livenessTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			const interval, timeout, think = 100 * time.Millisecond, 500 * time.Millisecond, 300 * time.Millisecond
			var pings atomic.Int32
			endpoint := livenessPeer(t, tr, func(c *testagent.PeerConn, _ <-chan struct{}) {
				if c.Accept("no-pong") != nil {
					return
				}
				for {
					m, err := c.Recv()
					if err != nil {
						return
					}
					if m.GetPing() != nil {
						pings.Add(1)
						continue
					}
					if _, ok := m.EventCorrelationID(); !ok {
						continue
					}
					time.Sleep(think)
					if c.Reply(m, nil) != nil {
						return
					}
				}
			})
			c, err := transport.Dial(ctxT(t, 10*time.Second), endpoint, transport.WithLiveness(interval, timeout), discardLogs)
			require.NoError(t, err)
			defer c.Close(context.Background())
			for i := range 4 {
				_, err := c.Send(ctxT(t, 5*time.Second), bodyChunk("r", uint32(i), "x"))
				require.NoError(t, err, "call %d", i)
			}
			assert.NoError(t, c.Err())
			assert.Positive(t, pings.Load(), "the agent was never pinged: the test proves nothing")
		})
	}
}

// TestLivenessIdleSilence: an agent that sends nothing while no call is
// outstanding is neither pinged nor dropped.
func TestLivenessIdleSilence(t *testing.T) {
	t.Parallel()
	var pings atomic.Int32
	endpoint := livenessPeer(t, transport.TransportUnix, func(c *testagent.PeerConn, _ <-chan struct{}) {
		if c.Accept("idle") != nil {
			return
		}
		for {
			m, err := c.Recv()
			if err != nil {
				return
			}
			if m.GetPing() != nil {
				pings.Add(1)
			}
		}
	})
	c, err := transport.Dial(ctxT(t, 10*time.Second), endpoint, transport.WithLiveness(20*time.Millisecond, 40*time.Millisecond), discardLogs)
	require.NoError(t, err)
	defer c.Close(context.Background())
	time.Sleep(400 * time.Millisecond)
	assert.NoError(t, c.Err())
	assert.Equal(t, transport.StateReady, c.Status().State)
	assert.Zero(t, pings.Load())
}

// TestLivenessDisabled: with the check off, a hung agent keeps its
// connection and calls wait for their own deadlines.
func TestLivenessDisabled(t *testing.T) {
	t.Parallel()
	endpoint := livenessPeer(t, transport.TransportUnix, hangAfterFirst)
	c, err := transport.Dial(ctxT(t, 10*time.Second), endpoint, transport.WithLiveness(0, 0), discardLogs)
	require.NoError(t, err)
	defer c.Close(context.Background())
	_, err = c.Send(ctxT(t, 5*time.Second), bodyChunk("r", 0, "x"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_, err = c.Send(ctx, bodyChunk("r", 1, "x"))
	assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err), "%v", err)
	assert.NoError(t, c.Err())
}

// TestReceivedCounts: Received counts every message from the agent, and a
// pool can read it through the Receiver interface.
func TestReceivedCounts(t *testing.T) {
	t.Parallel()
	endpoint := livenessPeer(t, transport.TransportUnix, func(c *testagent.PeerConn, _ <-chan struct{}) {
		if c.Accept("counted") == nil {
			c.Serve()
		}
	})
	c, err := transport.Dial(ctxT(t, 10*time.Second), endpoint)
	require.NoError(t, err)
	defer c.Close(context.Background())
	r, ok := c.(transport.Receiver)
	require.True(t, ok, "%T is no transport.Receiver", c)
	before := r.Received()
	_, err = c.Send(ctxT(t, 5*time.Second), bodyChunk("r", 0, "x"))
	require.NoError(t, err)
	_, err = c.Ping(ctxT(t, 5*time.Second))
	require.NoError(t, err)
	assert.Equal(t, before+2, r.Received())
}
