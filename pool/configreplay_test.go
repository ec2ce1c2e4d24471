package pool

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	sdk "github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// configLog records the configuration versions an agent received; after
// gate is set, configure calls wait for it to be closed, and reject is
// what they answer.
type configLog struct {
	mu       sync.Mutex
	versions []string
	gate     atomic.Pointer[chan struct{}]
	reject   atomic.Bool
}

func (l *configLog) configure(ctx context.Context, ev *agentv2.ConfigureEvent) error {
	l.mu.Lock()
	l.versions = append(l.versions, ev.GetConfigVersion())
	l.mu.Unlock()
	if g := l.gate.Load(); g != nil {
		select {
		case <-*g:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if l.reject.Load() {
		return agentwire.Errorf(agentwire.CodeInvalidArgument, "this instance does not take %q", ev.GetConfigVersion())
	}
	return nil
}

func (l *configLog) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.versions...)
}

func connsIn(t *testing.T, p *Pool, id string, st ConnState) int {
	t.Helper()
	s, err := p.AgentStats(id)
	if err != nil {
		return 0
	}
	return countState(s, st)
}

// onlyReady reports whether agent id has exactly n connections, all ready.
func onlyReady(t *testing.T, p *Pool, id string, n int) bool {
	t.Helper()
	s, err := p.AgentStats(id)
	return err == nil && len(s.Conns) == n && countState(s, ConnReady) == n
}

// replayFixture is a Unix-socket agent logging its configurations, behind
// a pool of conns connections that redials fast, all of them ready.
type replayFixture struct {
	log *configLog
	rec *recorder
	ua  *unixAgent
	p   *Pool
	ctx context.Context
}

func newReplayFixture(t *testing.T, conns int) *replayFixture {
	t.Helper()
	f := &replayFixture{log: new(configLog), rec: newRecorder("a"), ctx: testCtx(t)}
	f.rec.configure = f.log.configure
	f.ua = newUnixAgent(t, f.rec)
	f.p = newTestPool(t, WithConnections(conns), WithReconnectBackoff(2*time.Millisecond, 20*time.Millisecond))
	require.NoError(t, f.p.AddAgent(f.ctx, "waf", f.ua.endpoint()))
	require.Eventually(t, func() bool { return onlyReady(t, f.p, "waf", conns) }, 5*time.Second, time.Millisecond)
	return f
}

// restart kills the agent and starts it again: every connection drops.
func (f *replayFixture) restart() {
	f.ua.kill()
	f.ua.start()
}

// TestConfigReplayedToNewConnections: an agent that restarts gets the last
// pushed configuration on its new connection, which takes no request until
// the agent has answered it.
func TestConfigReplayedToNewConnections(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t, 1)
	log, rec, p, ctx := f.log, f.rec, f.p, f.ctx
	_, err := p.PushConfig(ctx, "waf", configEvent("v7", `{"mode":"block"}`))
	require.NoError(t, err)
	require.Equal(t, []string{"v7"}, log.got())

	gate := make(chan struct{})
	log.gate.Store(&gate)
	f.restart()
	require.Eventually(t, func() bool { return connsIn(t, p, "waf", ConnConfiguring) == 1 }, 5*time.Second, time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = p.Send(sctx, "waf", headers("early"))
	cancel()
	require.Error(t, err, "a configuring connection took a request")
	assert.Zero(t, rec.events.Load(), "the agent saw a request before its configuration")

	close(gate)
	require.Eventually(t, func() bool { return onlyReady(t, p, "waf", 1) }, 5*time.Second, time.Millisecond)
	require.NoError(t, sendRequest(ctx, p, "waf", "after"))
	assert.Equal(t, []string{"v7", "v7"}, log.got())
}

// TestConfigReplayRejectedStillServes: an instance that rejects the
// replayed configuration keeps serving with the one it has.
func TestConfigReplayRejectedStillServes(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t, 2)
	log, p, ctx := f.log, f.p, f.ctx
	_, err := p.PushConfig(ctx, "waf", configEvent("v1", "{}"))
	require.NoError(t, err)

	log.reject.Store(true)
	f.restart()
	// Both connections are new once two replays have been answered.
	require.Eventually(t, func() bool { return len(log.got()) == 3 && onlyReady(t, p, "waf", 2) },
		5*time.Second, time.Millisecond)
	require.NoError(t, sendRequest(ctx, p, "waf", "served"))
	assert.Equal(t, []string{"v1", "v1", "v1"}, log.got(), "one push, then one replay per new connection")
}

// TestConfigRejectedEverywhereNotReplayed: a configuration every instance
// rejected is not replayed; the one before it is.
func TestConfigRejectedEverywhereNotReplayed(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t, 1)
	log, p, ctx := f.log, f.p, f.ctx
	_, err := p.PushConfig(ctx, "waf", configEvent("good", "{}"))
	require.NoError(t, err)
	log.reject.Store(true)
	_, err = p.PushConfig(ctx, "waf", configEvent("bad", "{}"))
	require.Error(t, err)
	assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err))

	log.reject.Store(false)
	f.restart()
	require.Eventually(t, func() bool { return len(log.got()) == 3 && onlyReady(t, p, "waf", 1) },
		5*time.Second, time.Millisecond)
	require.NoError(t, sendRequest(ctx, p, "waf", "served"))
	assert.Equal(t, []string{"good", "bad", "good"}, log.got())
}

// TestConfigReplayedToReverseConnections: a reverse connection adopted
// after a push gets the configuration before it takes requests.
func TestConfigReplayedToReverseConnections(t *testing.T) {
	t.Parallel()
	p := newTestPool(t)
	path := adoptingListener(t, p, nil)

	var log configLog
	rec := newRecorder("rev")
	rec.configure = log.configure
	srv, err := sdk.NewServer(rec, sdk.WithAgentID("rev"), sdk.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	dial := func(n int) func() {
		d, err := sdk.NewReverseDialer(srv, "unix://"+path, sdk.WithConnections(n),
			sdk.WithReconnectBackoff(time.Millisecond, 20*time.Millisecond))
		require.NoError(t, err)
		dctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = d.Run(dctx)
		}()
		return func() {
			stop()
			<-done
			_ = d.Close(context.Background())
		}
	}
	stopFirst := dial(1)
	t.Cleanup(stopFirst)
	t.Cleanup(srv.Close)
	ctx := testCtx(t)
	require.Eventually(t, func() bool { return connsIn(t, p, "rev", ConnReady) == 1 }, 5*time.Second, time.Millisecond)
	_, err = p.PushConfig(ctx, "rev", configEvent("r1", "{}"))
	require.NoError(t, err)

	gate := make(chan struct{})
	log.gate.Store(&gate)
	stopSecond := dial(1)
	t.Cleanup(stopSecond)
	require.Eventually(t, func() bool { return connsIn(t, p, "rev", ConnConfiguring) == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, 1, connsIn(t, p, "rev", ConnReady), "the first connection serves meanwhile")
	close(gate)
	require.Eventually(t, func() bool { return connsIn(t, p, "rev", ConnReady) == 2 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []string{"r1", "r1"}, log.got())
}
