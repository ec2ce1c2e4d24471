package reliability_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/reliability"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var quietLogger = slog.New(slog.DiscardHandler)

// newTestPool returns a pool that is shut down when the test ends.
func newTestPool(t *testing.T, opts ...pool.Option) *pool.Pool {
	t.Helper()
	p, err := pool.New(append([]pool.Option{pool.WithLogger(quietLogger)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, p.Shutdown(ctx))
	})
	return p
}

// Kill bounds. The pool must notice a dead agent from its sockets, not
// from timeouts.
const (
	killLoad         = 5000 // requests/s, two events each: 10k events/s
	killWorkers      = 25
	maxWaitAfterKill = 100 * time.Millisecond
	backoffBase      = 10 * time.Millisecond
	backoffMax       = 250 * time.Millisecond
)

// TestAgentKilledUnderLoad: two instances of the WAF agent, each its own
// process, behind one pool; callers prefer one and fail over to the other
// when it is unavailable. SIGKILL one at ~10k events/s: no request waits
// more than 100 ms after the kill, and every request is still decided
// (by the other instance). Restart it: the pool is back to full
// connections within the reconnect backoff, and the agent serves again.
func TestAgentKilledUnderLoad(t *testing.T) {
	dir := shortDir(t)
	paths := []string{filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")}
	ids := []string{"waf-a", "waf-b"}
	procs := make([]*reliability.AgentProcess, 2)
	for i := range procs {
		procs[i] = startWAF(t, "-uds", paths[i], "-id", ids[i])
	}
	const conns = 4
	p := newTestPool(t, pool.WithConnections(conns), pool.WithBackoff(backoffBase, backoffMax),
		pool.WithCircuitBreaker(5, time.Second, 200*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range ids {
		require.NoError(t, p.AddAgent(ctx, ids[i], "unix://"+paths[i]))
		eventually(t, 5*time.Second, ids[i]+" connected", func() bool { return readyConns(p, ids[i]) == conns })
	}

	cfg := &loadConfig{pool: p, agents: ids, workers: killWorkers, rate: killLoad, timeout: 2 * time.Second}
	lctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	results := make(chan []op, 1)
	go func() { results <- runLoad(lctx, cfg) }()

	time.Sleep(1500 * time.Millisecond)
	killAt := time.Now()
	require.NoError(t, procs[0].Kill())
	time.Sleep(time.Second)

	procs[0] = startWAF(t, "-uds", paths[0], "-id", ids[0])
	restartAt := time.Now()
	servedBefore := cfg.served[0].Load()
	recovery := eventually(t, 5*time.Second, "waf-a back to full connections",
		func() bool { return readyConns(p, ids[0]) == conns })
	eventually(t, 5*time.Second, "waf-a serving again",
		func() bool { return cfg.served[0].Load() > servedBefore })
	serving := time.Since(restartAt)
	time.Sleep(500 * time.Millisecond)
	stopLoad()
	ops := <-results
	end := time.Now()

	var (
		waits                                []time.Duration
		failedOver, unserved, afterKill, evs int
		codes                                = map[agentwire.Code]int{}
	)
	for _, o := range ops {
		evs += 2 * (1 + btoi(o.failedOver))
		for _, err := range o.errs {
			codes[agentwire.CodeOf(err)]++
			if c := agentwire.CodeOf(err); c != agentwire.CodeUnavailable && c != agentwire.CodeFailedPrecondition {
				t.Errorf("request %v: error %v, want Unavailable (dead connection) or FailedPrecondition (its request was on it)", o.start, err)
			}
		}
		if o.servedBy < 0 {
			unserved++
			t.Errorf("request started %v after the kill was not decided: %v", o.start.Sub(killAt), o.errs)
		}
		if o.failedOver {
			failedOver++
		}
		if o.end.After(killAt) {
			afterKill++
			from := o.start
			if from.Before(killAt) {
				from = killAt
			}
			waits = append(waits, o.end.Sub(from))
		}
	}
	rate := float64(evs) / end.Sub(killAt.Add(-1500*time.Millisecond)).Seconds()
	worst := quantile(waits, 1)
	assert.LessOrEqual(t, worst, maxWaitAfterKill, "a request waited too long after the kill")
	// The slots redial with backoff up to backoffMax (±20% jitter); then one
	// dial and handshake.
	assert.LessOrEqual(t, recovery, backoffMax*6/5+150*time.Millisecond, "reconnection slower than the backoff")
	assert.NotZero(t, failedOver, "no request failed over: was the agent killed?")
	assert.Greater(t, rate, 0.5*2*killLoad, "load generator far below the target rate")

	figure(t, "kill.events_per_s", "%.0f", rate)
	figure(t, "kill.requests", "%d requests, %d after the kill, %d failed over, %d undecided", len(ops), afterKill, failedOver, unserved)
	figure(t, "kill.wait_after_kill", "p50 %s, p99 %s, max %s", ms(quantile(waits, 0.5)), ms(quantile(waits, 0.99)), ms(worst))
	figure(t, "kill.recovery", "full connections %s after restart (backoff max %v), serving after %s", ms(recovery), backoffMax, ms(serving))
	t.Logf("error codes: %v; restart at +%v", codes, restartAt.Sub(killAt))
	faultsSurvived.Add(1)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// errorsIs reports whether err matches any of targets.
func errorsIs(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

var _ = transport.ErrPeerGone
var _ = syscall.SIGSTOP
