package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Bounds of the hang test.
const (
	hangWorkers  = 16              // closed-loop callers
	hangDeadline = 2 * time.Second // each caller's deadline per request
	hangWarmup   = time.Second
	hangWindow   = time.Second // pre-stop throughput window
	hangRecovery = 2 * time.Second
	hangAfter    = time.Second // post-recovery throughput window
	hangBucket   = 50 * time.Millisecond
	// recoveryWindow measures the throughput while it recovers.
	recoveryWindow = 250 * time.Millisecond
	hangMaxRun     = 30 * time.Second
)

// TestAgentHangsUnderLoad: one agent of a pool runs as two processes
// (instances), two connections to each, under a closed loop of callers
// with 2 s deadlines. SIGSTOP one process: its connections go silent with
// events outstanding, the transport's liveness check drops them (the
// process is hung, not slow), the pool stops routing to them, and within
// 2 s of the stop the other process carries at least 80% of the
// throughput both carried before. The breaker stays closed: half the agent
// is fine. SIGCONT brings the stopped instance back.
func TestAgentHangsUnderLoad(t *testing.T) {
	trs := []string{transport.TransportUnix}
	if os.Getenv("AGENTWIRE_LONG") == "1" {
		trs = processTransports
	}
	for _, tr := range trs {
		t.Run(tr, func(t *testing.T) { hangUnderLoad(t, tr) })
	}
}

func hangUnderLoad(t *testing.T, tr string) {
	dir := shortDir(t)
	addrs := []agentAddr{newAgentAddr(t, tr, dir, "a"), newAgentAddr(t, tr, dir, "b")}
	procs := []*testagent.AgentProcess{startWAF(t, addrs[0].args("waf")...), startWAF(t, addrs[1].args("waf")...)}

	// The agent's name resolves to two instances; the dialer takes each
	// to its process.
	instances := []string{"grpc://127.0.0.1:1", "grpc://127.0.0.2:1"}
	var (
		mu    sync.Mutex
		conns [2][]transport.Conn // every connection dialled, by instance
	)
	dial := func(ctx context.Context, endpoint string, opts ...transport.Option) (transport.Conn, error) {
		i := 0
		if endpoint == instances[1] {
			i = 1
		}
		c, err := transport.Dial(ctx, addrs[i].endpoint, opts...)
		if err == nil {
			mu.Lock()
			conns[i] = append(conns[i], c)
			mu.Unlock()
		}
		return c, err
	}
	const perInstance = 2
	p := newTestPool(t, pool.WithConnections(perInstance), pool.WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond),
		pool.WithDialer(dial), pool.WithResolver(twoInstances{}), pool.WithTransportOptions(transport.WithLogger(quietLogger)))
	// Should the test end early, the process resumes before the pool shuts down.
	t.Cleanup(func() { _ = procs[1].Signal(syscall.SIGCONT) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.AddAgent(ctx, "waf", "dns:///waf.test:1?scheme=grpc"))
	ready := func(i int) int { return readyOn(p, "waf", instances[i]) }
	eventually(t, 5*time.Second, "four connections", func() bool { return ready(0) == perInstance && ready(1) == perInstance })

	load := startClosedLoop(p, "waf", hangWorkers, hangDeadline)
	defer load.stop()
	time.Sleep(hangWarmup + hangWindow)
	require.NoError(t, procs[1].Signal(syscall.SIGSTOP))
	eventually(t, 5*time.Second, "agent stopped", func() bool {
		stopped, err := procs[1].Stopped()
		require.NoError(t, err)
		return stopped
	})
	stopAt := time.Now()
	before := load.rate(stopAt.Add(-hangWindow), stopAt)
	var stopped []transport.Conn
	mu.Lock()
	for _, c := range conns[1] {
		if c.Err() == nil {
			stopped = append(stopped, c)
		}
	}
	mu.Unlock()
	require.Len(t, stopped, perInstance)

	// The stopped instance's connections leave rotation.
	left := eventually(t, 2*hangRecovery, "stopped connections out of rotation", func() bool { return ready(1) == 0 })
	if d := hangRecovery + hangAfter - time.Since(stopAt); d > 0 {
		time.Sleep(d)
	}
	after := load.rate(stopAt.Add(hangRecovery), stopAt.Add(hangRecovery+hangAfter))
	recovered, dip := load.recovery(stopAt, 0.8*before, stopAt.Add(hangRecovery+hangAfter))
	st, err := p.AgentStats("waf")
	require.NoError(t, err)
	assert.Equal(t, perInstance, ready(0), "the running instance lost connections")
	for _, c := range stopped {
		assert.ErrorIs(t, c.Err(), transport.ErrUnresponsive, "a connection to the stopped process")
	}
	assert.LessOrEqual(t, left, hangRecovery, "stopped connections stayed in rotation")
	assert.GreaterOrEqual(t, after, 0.8*before, "the running instance carries less than 80%% of the load after %v", hangRecovery)
	assert.LessOrEqual(t, recovered, hangRecovery, "throughput back to 80%% too late")
	assert.Zero(t, st.BreakerOpened, "the breaker opened: half the agent was fine")

	// SIGCONT: the instance serves again.
	assert.Zero(t, ready(1), "a connection to the stopped process came back while it was stopped")
	require.NoError(t, procs[1].Signal(syscall.SIGCONT))
	back := eventually(t, 10*time.Second, "stopped instance back", func() bool { return ready(1) == perInstance })
	load.stop()
	errs := load.errors()
	for code := range errs {
		switch code {
		case agentwire.CodeUnavailable, agentwire.CodeFailedPrecondition, agentwire.CodeDeadlineExceeded:
		default:
			t.Errorf("%d calls failed with %v", errs[code], code)
		}
	}

	figure(t, "hang."+tr+".throughput", "%.0f requests/s before SIGSTOP of one of two processes, %.0f/s 2-3 s after (%.0f%%); lowest %v window %.0f/s",
		before, after, 100*after/before, recoveryWindow, dip)
	figure(t, "hang."+tr+".recovery", "stopped connections out %s after SIGSTOP, throughput at 80%% after %s; back %s after SIGCONT",
		ms(left), ms(recovered), ms(back))
	t.Logf("errors: %v; stop at +%v", errs, stopAt.Sub(load.t0).Round(time.Millisecond))
	faultsSurvived.Add(1)
}

// readyOn counts agent id's connections to endpoint that take requests.
func readyOn(p *pool.Pool, id, endpoint string) int {
	st, err := p.AgentStats(id)
	if err != nil {
		return 0
	}
	n := 0
	for _, c := range st.Conns {
		if c.Endpoint == endpoint && c.State == pool.ConnReady {
			n++
		}
	}
	return n
}

// twoInstances resolves every name to two loopback addresses.
type twoInstances struct{}

func (twoInstances) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	if network != "ip4" {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}, nil
}

// closedLoop is a fixed number of callers, each sending a request
// (headers, then request-complete) as soon as its previous one ended. It
// counts the requests decided per time bucket.
type closedLoop struct {
	t0      time.Time
	buckets []atomic.Int64
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once

	mu   sync.Mutex // mu guards errs
	errs map[agentwire.Code]int
}

func startClosedLoop(p *pool.Pool, id string, workers int, deadline time.Duration) *closedLoop {
	ctx, cancel := context.WithTimeout(context.Background(), hangMaxRun)
	l := &closedLoop{t0: time.Now(), buckets: make([]atomic.Int64, hangMaxRun/hangBucket+1), cancel: cancel,
		errs: map[agentwire.Code]int{}}
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				corr := fmt.Sprintf("w%d-%d", w, i)
				rctx, rcancel := context.WithTimeout(ctx, deadline)
				_, err := p.Send(rctx, id, headersEvent(corr, "/products?id=7"))
				_, cerr := p.Send(rctx, id, completeEvent(corr))
				rcancel()
				if ctx.Err() != nil {
					return
				}
				l.count(err, cerr)
			}
		})
	}
	return l
}

// count records one request: decided if its headers were.
func (l *closedLoop) count(errs ...error) {
	if errs[0] == nil {
		l.buckets[time.Since(l.t0)/hangBucket].Add(1)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			l.errs[agentwire.CodeOf(err)]++
		}
	}
}

// rate is the decided requests per second in [from, to).
func (l *closedLoop) rate(from, to time.Time) float64 {
	a, b := int(from.Sub(l.t0)/hangBucket), int(to.Sub(l.t0)/hangBucket)
	var n int64
	for i := max(a, 0); i < b && i < len(l.buckets); i++ {
		n += l.buckets[i].Load()
	}
	return float64(n) / (float64(b-a) * hangBucket.Seconds())
}

// recovery slides a window of recoveryWindow from from to until: it
// returns how long after from the first window that reaches target ends,
// and the lowest rate of any window.
func (l *closedLoop) recovery(from time.Time, target float64, until time.Time) (time.Duration, float64) {
	const w = recoveryWindow
	first, low := time.Duration(-1), -1.0
	for end := from.Add(w); !end.After(until); end = end.Add(hangBucket) {
		r := l.rate(end.Add(-w), end)
		if low < 0 || r < low {
			low = r
		}
		if first < 0 && r >= target {
			first = end.Sub(from)
		}
	}
	if first < 0 {
		first = until.Sub(from)
	}
	return first, low
}

func (l *closedLoop) stop() {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
	})
}

func (l *closedLoop) errors() map[agentwire.Code]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.errs)
}
