package transport_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runReverseAgent runs agent.DialReverse for srv until the returned stop
// is called (or the test ends).
func runReverseAgent(t *testing.T, srv *agent.Server, addr string, opts ...agent.ReverseDialOption) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.DialReverse(ctx, srv, addr, opts...) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(stop)
	return stop
}

func sendOK(t *testing.T, c transport.Conn, corr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Send(ctx, headers(corr, "GET", "/"+corr))
	require.NoError(t, err)
	assert.Equal(t, corr, resp.GetCorrelationId())
	assert.Equal(t, "suite", headerOp(resp.GetRequestHeaders(), "x-agent"))
}

// TestReverseEndToEnd: an in-process agent dials, registers three
// connections and serves events through each.
func TestReverseEndToEnd(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			_, srv := newServer(t)
			rl := startReverse(t, network, transport.WithAgentToken("suite-agent", "tok"),
				transport.WithAllowedAgents("suite-*"), transport.WithMaxConnsPerAgent(3))
			start := time.Now()
			runReverseAgent(t, srv, rl.agentAddr, agent.WithAgentToken("tok"), agent.WithConnections(3),
				agent.WithRegistrationMetadata(map[string]string{"build": "e2e"}))
			conns := make([]transport.Conn, 0, 3)
			for range 3 {
				a := rl.nextAdmitted(t)
				assert.Equal(t, "suite-agent", a.id)
				assert.Equal(t, "e2e", a.reg.GetMetadata()["build"])
				assert.Equal(t, "suite-agent", a.reg.GetCapabilities().GetAgentId())
				assert.Equal(t, "suite-agent", a.c.Capabilities().GetAgentId())
				conns = append(conns, a.c)
			}
			t.Logf("%s: three connections registered and handshaken in %v", network, time.Since(start))
			for i, c := range conns {
				for j := range 10 {
					sendOK(t, c, "r-"+string(rune('a'+i))+string(rune('0'+j)))
				}
				rtt, err := c.Ping(ctxT(t, 5*time.Second))
				require.NoError(t, err)
				assert.Positive(t, rtt)
			}
			st := rl.Stats()
			assert.Equal(t, 3, st.Live)
			assert.Equal(t, uint64(3), st.Admitted)
			assert.Zero(t, st.Rejected, "the agent must stop at its connection count")
		})
	}
}

// TestReverseAgentRestart: an agent that dies and comes back registers
// again and serves; the dead connection's cap slot is free by then.
func TestReverseAgentRestart(t *testing.T) {
	t.Parallel()
	kills := map[string]func(srv *agent.Server, stop func()){
		"ContextCancelled": func(_ *agent.Server, stop func()) { stop() },
		"ServerClosed":     func(srv *agent.Server, _ func()) { srv.Close() },
	}
	for name, kill := range kills {
		for _, network := range []string{"unix", "tcp"} {
			t.Run(name+"/"+network, func(t *testing.T) {
				t.Parallel()
				rl := startReverse(t, network, transport.WithGlobalToken("tok"), transport.WithMaxConnsPerAgent(1))
				backoff := agent.WithReconnectBackoff(10*time.Millisecond, 100*time.Millisecond)

				_, srv1 := newServer(t)
				stop1 := runReverseAgent(t, srv1, rl.agentAddr, agent.WithAgentToken("tok"), backoff)
				first := rl.nextAdmitted(t)
				sendOK(t, first.c, "before")

				kill(srv1, stop1)
				select {
				case <-first.c.Done():
				case <-time.After(5 * time.Second):
					t.Fatal("the proxy did not notice the agent died")
				}
				assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(first.c.Err()))
				_, err := first.c.Send(ctxT(t, time.Second), headers("late", "GET", "/"))
				assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))
				require.Eventually(t, func() bool { return rl.Stats().Live == 0 }, 5*time.Second, time.Millisecond)
				stop1()

				_, srv2 := newServer(t)
				restart := time.Now()
				runReverseAgent(t, srv2, rl.agentAddr, agent.WithAgentToken("tok"), backoff)
				second := rl.nextAdmitted(t)
				t.Logf("re-registered %v after the restart", time.Since(restart))
				sendOK(t, second.c, "after")
				assert.Empty(t, rl.rejected, "the old connection's slot must be free")
			})
		}
	}
}

// TestReverseProxyRestart: when the proxy's listener goes away and comes
// back, a running agent re-registers within its backoff.
func TestReverseProxyRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(shortTempDir(t), "proxy.sock")
	admitted := make(chan transport.Conn, 8)
	newListener := func() *transport.ReverseListener {
		l, err := transport.NewReverseListener(transport.WithGlobalToken("tok"),
			transport.WithAdmitHandler(func(_ string, c transport.Conn, _ *agentv2.RegistrationRequest) { admitted <- c }))
		require.NoError(t, err)
		_, err = l.ListenUnix(path)
		require.NoError(t, err)
		return l
	}
	l1 := newListener()
	_, srv := newServer(t)
	const maxBackoff = 200 * time.Millisecond
	var errs dialErrorLog
	runReverseAgent(t, srv, "unix://"+path, agent.WithAgentToken("tok"),
		agent.WithReconnectBackoff(10*time.Millisecond, maxBackoff), agent.WithDialErrorHandler(errs.add))
	c1 := <-admitted
	sendOK(t, c1, "one")

	require.NoError(t, l1.CloseConns(ctxT(t, 5*time.Second)))
	require.NoError(t, l1.Close(ctxT(t, 5*time.Second)))
	<-c1.Done()
	require.Eventually(t, func() bool { return errs.count() >= 3 }, 5*time.Second, time.Millisecond, "the agent retries")

	l2 := newListener()
	t.Cleanup(func() {
		require.NoError(t, l2.CloseConns(ctxT(t, 5*time.Second)))
		require.NoError(t, l2.Close(ctxT(t, 5*time.Second)))
	})
	back := time.Now()
	var c2 transport.Conn
	select {
	case c2 = <-admitted:
	case <-time.After(5 * time.Second):
		t.Fatal("agent did not come back")
	}
	took := time.Since(back)
	t.Logf("agent re-registered %v after the proxy came back (max backoff %v)", took, maxBackoff)
	assert.Less(t, took, maxBackoff+500*time.Millisecond)
	sendOK(t, c2, "two")
}

// dialErrorLog counts a dialer's failed attempts.
type dialErrorLog struct{ n atomic.Int32 }

func (l *dialErrorLog) add(error, time.Duration) { l.n.Add(1) }

func (l *dialErrorLog) count() int { return int(l.n.Load()) }

// TestReverseRejectionDoesNotHammer: an agent with a wrong token keeps
// trying, but at the longest backoff.
func TestReverseRejectionDoesNotHammer(t *testing.T) {
	t.Parallel()
	rl := startReverse(t, "tcp", transport.WithGlobalToken("right"))
	_, srv := newServer(t)
	var errs []error
	got := make(chan error, 64)
	stop := runReverseAgent(t, srv, rl.agentAddr, agent.WithAgentToken("wrong"),
		agent.WithReconnectBackoff(time.Millisecond, 300*time.Millisecond),
		agent.WithRand(func() uint64 { return 0 }), // always half the ceiling: 150 ms
		agent.WithDialErrorHandler(func(err error, _ time.Duration) { got <- err }))
	time.Sleep(time.Second)
	stop()
	close(got)
	for err := range got {
		errs = append(errs, err)
	}
	// Exponential backoff from 1 ms would have made ~14 attempts by now.
	assert.GreaterOrEqual(t, len(errs), 2)
	assert.LessOrEqual(t, len(errs), 8)
	for _, err := range errs {
		assert.ErrorIs(t, err, agent.ErrRegistrationRejected)
		assert.Equal(t, agentwire.CodeUnauthenticated, agentwire.CodeOf(err))
	}
	assert.Zero(t, rl.Stats().Admitted)
}
