package reliability_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/pool"
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
	for _, tr := range processTransports {
		t.Run(tr, func(t *testing.T) { killUnderLoad(t, tr) })
	}
}

func killUnderLoad(t *testing.T, tr string) {
	dir := shortDir(t)
	ids := []string{"waf-a", "waf-b"}
	addrs := []agentAddr{newAgentAddr(t, tr, dir, "a"), newAgentAddr(t, tr, dir, "b")}
	procs := make([]*testagent.AgentProcess, 2)
	for i := range procs {
		procs[i] = startWAF(t, addrs[i].args(ids[i])...)
	}
	const conns = 4
	p := newTestPool(t, pool.WithConnections(conns), pool.WithReconnectBackoff(backoffBase, backoffMax),
		pool.WithCircuitBreaker(5, time.Second, 200*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range ids {
		require.NoError(t, p.AddAgent(ctx, ids[i], addrs[i].endpoint))
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

	procs[0] = startWAF(t, addrs[0].args(ids[0])...)
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
	// The floor only shows the kill happened under real load: with -race
	// and the other packages' tests sharing two cores, the generator has
	// reached as little as half the target (throughput is agentbench's).
	assert.Greater(t, rate, 0.3*2*killLoad, "load generator far below the target rate")

	figure(t, "kill."+tr+".events_per_s", "%.0f", rate)
	figure(t, "kill."+tr+".requests", "%d requests, %d after the kill, %d failed over, %d undecided", len(ops), afterKill, failedOver, unserved)
	figure(t, "kill."+tr+".wait", "after the kill: p50 %s, p99 %s, max %s", ms(quantile(waits, 0.5)), ms(quantile(waits, 0.99)), ms(worst))
	figure(t, "kill."+tr+".recovery", "full connections %s after restart (backoff max %v), serving after %s", ms(recovery), backoffMax, ms(serving))
	t.Logf("error codes: %v; restart at +%v", codes, restartAt.Sub(killAt))
	faultsSurvived.Add(1)
}

// TestAgentStoppedUnderLoad: SIGSTOP the agent process (it stops reading;
// the kernel buffers fill, then the proxy's write queues). Calls end at
// their deadlines, the proxy's memory stays bounded by its pending-bytes
// limit, and SIGCONT brings service back. The liveness check is off: it
// would drop the connections (see TestAgentHangsUnderLoad), and this test
// is about the queues of connections that stay.
func TestAgentStoppedUnderLoad(t *testing.T) {
	for _, tr := range processTransports {
		t.Run(tr, func(t *testing.T) { stopUnderLoad(t, tr) })
	}
}

func stopUnderLoad(t *testing.T, tr string) {
	addr := newAgentAddr(t, tr, shortDir(t), "waf")
	proc := startWAF(t, addr.args("waf")...)
	const (
		conns       = 4
		maxPending  = 256 << 10
		callTimeout = 300 * time.Millisecond
		stopFor     = 2 * time.Second
	)
	p := newTestPool(t, pool.WithConnections(conns), pool.WithTransportOptions(transport.WithMaxPending(maxPending)),
		pool.WithLiveness(0, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.AddAgent(ctx, "waf", addr.endpoint))
	eventually(t, 5*time.Second, "connected", func() bool { return readyConns(p, "waf") == conns })
	connIDs := func() []string {
		st, _ := p.AgentStats("waf")
		var ids []string
		for _, c := range st.Conns {
			ids = append(ids, c.ID)
		}
		return ids
	}
	before := connIDs()

	// 8 KiB of headers per request, so that a stalled agent fills the
	// kernel's socket buffers and then the proxy's queues within the stop.
	big := strings.Repeat("x", 8<<10)
	cfg := &loadConfig{pool: p, agents: []string{"waf"}, workers: 400, rate: 1000, timeout: callTimeout,
		headers: func(corr string) *agentv2.ProxyToAgent {
			ev := headersEvent(corr, "/upload")
			h := ev.GetRequestHeaders()
			h.Headers = append(h.Headers, &agentv2.Header{Name: "x-bulk", Value: big})
			return ev
		}}
	lctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	results := make(chan []op, 1)
	go func() { results <- runLoad(lctx, cfg) }()

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	time.Sleep(500 * time.Millisecond)
	var baseline uint64
	for range 5 {
		baseline = max(baseline, heap())
		time.Sleep(100 * time.Millisecond)
	}
	baseGoroutines := runtime.NumGoroutine()

	require.NoError(t, proc.Signal(syscall.SIGSTOP))
	eventually(t, 5*time.Second, "agent stopped", func() bool {
		stopped, err := proc.Stopped()
		require.NoError(t, err)
		return stopped
	})
	// Answers the agent wrote just before it stopped may still be read.
	stopAt := time.Now().Add(50 * time.Millisecond)
	var peak uint64
	peakGoroutines := 0
	for time.Since(stopAt) < stopFor {
		peak = max(peak, heap())
		peakGoroutines = max(peakGoroutines, runtime.NumGoroutine())
		time.Sleep(250 * time.Millisecond)
	}
	require.NoError(t, proc.Signal(syscall.SIGCONT))
	contAt := time.Now()
	servedAtCont := cfg.served[0].Load()
	eventually(t, 5*time.Second, "served again after SIGCONT", func() bool { return cfg.served[0].Load() > servedAtCont })
	recovery := time.Since(contAt)
	time.Sleep(time.Second)
	stopLoad()
	ops := <-results

	var (
		durations       []time.Duration
		stalled, served int
		codes           = map[agentwire.Code]int{}
	)
	for _, o := range ops {
		durations = append(durations, o.end.Sub(o.start))
		for _, err := range o.errs {
			codes[agentwire.CodeOf(err)]++
			switch agentwire.CodeOf(err) {
			case agentwire.CodeDeadlineExceeded, agentwire.CodeResourceExhausted:
			default:
				t.Errorf("request at %v: %v, want DeadlineExceeded or ResourceExhausted (limits)", o.start.Sub(stopAt), err)
			}
		}
		if o.start.After(stopAt) && o.end.Before(contAt) {
			stalled++
			if o.servedBy >= 0 {
				served++
			}
		}
	}
	longest := quantile(durations, 1)
	// The load generator reads the clock after Send returns: on two
	// loaded cores with -race its goroutine may run 100–250 ms late. A
	// call that waited for the stopped agent would take seconds.
	assert.LessOrEqual(t, longest, callTimeout+350*time.Millisecond, "a call outlived its deadline")
	assert.NotZero(t, codes[agentwire.CodeDeadlineExceeded], "no call hit its deadline: was the agent stopped?")
	assert.Zero(t, served, "requests decided by a stopped agent")
	growth := int64(peak) - int64(baseline)
	// Each connection queues at most maxPending bytes (plus the flusher's
	// buffer of the same size); the rest is bookkeeping of waiting calls
	// and, on gRPC, what HTTP/2 flow control lets grpc-go buffer.
	bound := int64(conns*2*maxPending + 8<<20)
	if tr == transport.TransportGRPC {
		bound += 3 << 20
	}
	assert.Less(t, growth, bound, "proxy heap grew by %d bytes while the agent was stopped", growth)
	assert.Equal(t, before, connIDs(), "connections were replaced: a stalled agent is not a dead one")
	assert.Equal(t, conns, readyConns(p, "waf"))
	st, err := p.AgentStats("waf")
	require.NoError(t, err)
	var late uint64
	for _, c := range st.Conns {
		late += c.Transport.UnknownResponses
	}

	figure(t, "stop."+tr+".requests", "%d requests during a %v SIGSTOP, %d decided; longest call %s (deadline %v)",
		stalled, stopFor, served, ms(longest), callTimeout)
	offered := float64(stalled) * float64(len(big)) / (1 << 20)
	figure(t, "stop."+tr+".heap", "proxy heap +%.1f MiB while stopped with %.0f MiB of events offered (bound %.1f MiB), goroutines %d -> %d",
		float64(growth)/(1<<20), offered, float64(bound)/(1<<20), baseGoroutines, peakGoroutines)
	figure(t, "stop."+tr+".recovery", "served again %s after SIGCONT; %d late answers ignored and counted", ms(recovery), late)
	t.Logf("error codes: %v", codes)
	faultsSurvived.Add(1)
}

// agentAddr is where an agent process listens: its command-line flag and
// the pool endpoint for it.
type agentAddr struct{ flag, addr, endpoint string }

// newAgentAddr picks a Unix socket in dir or a free loopback port.
func newAgentAddr(t *testing.T, tr, dir, name string) agentAddr {
	t.Helper()
	if tr == transport.TransportGRPC {
		a := "127.0.0.1:" + strconv.Itoa(freePort(t))
		return agentAddr{"-grpc", a, "grpc://" + a}
	}
	path := filepath.Join(dir, name+".sock")
	return agentAddr{"-uds", path, "unix://" + path}
}

func (a agentAddr) args(id string) []string { return []string{a.flag, a.addr, "-id", id} }

// processTransports are the transports the process-fault tests run over.
var processTransports = []string{transport.TransportUnix, transport.TransportGRPC}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
