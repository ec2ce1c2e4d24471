package pool

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool/balancer"
	"github.com/agentwire/agentwire/pool/breaker"
	"github.com/agentwire/agentwire/pool/internal/affinity"
	"github.com/agentwire/agentwire/transport"
)

// closeTimeout bounds closing one transport connection.
const closeTimeout = 5 * time.Second

// agent is one agent of the pool: its instances (endpoints), connections,
// balancer, breaker and request tables.
type agent struct {
	p        *Pool
	id       string
	cfg      agentConfig
	endpoint string // as given to AddAgent; empty for agents known only by reverse connections

	snap     atomic.Pointer[snapshot]
	caps     atomic.Pointer[Capabilities] // see agreeLocked
	draining atomic.Bool
	removing atomic.Bool
	idle     chan struct{} // capacity 1; poked when draining and a counter reaches zero
	breaker  *breaker.Breaker
	aff      *affinity.Table[*SubConn] // correlation id -> connection holding the request
	sticky   *affinity.Table[*SubConn] // session id -> connection

	// notice is the drain notice once the agent drains: connections that
	// join later get it too.
	notice atomic.Pointer[agentv2.ProxyToAgent]
	// config is the last configuration pushed to the agent (and not
	// rejected by every instance): connections that join later get it
	// before they take requests.
	config atomic.Pointer[agentv2.ConfigureEvent]

	// events counts what every event writes, on cache lines of its own.
	events eventCounters

	errors, failOpen, flowRejected, limitRejected   atomic.Uint64
	breakerRejected, affinityMisses, stickyOverflow atomic.Uint64
	// violations and unresponsive count connections that ended for a
	// protocol violation or for liveness (see uninstall).
	violations, unresponsive atomic.Uint64
	configState              atomic.Pointer[ConfigStatus]

	ctx    context.Context // ends when the agent is closed
	cancel context.CancelFunc
	force  chan struct{} // closed with the agent: retiring connections close at once
	wg     sync.WaitGroup

	mu sync.Mutex // mu guards the following
	// conns are the installed connections that are not retired, in order.
	conns     []*SubConn
	instances map[string]*instance
	bal       balancer.Balancer
	seq       int // numbers connections
	reverse   int // adopted connections installed
	reserved  int // reverse connections admitted at registration, not yet installed
	// bound holds the SubConns made for registrations whose connection
	// options (and so status listener) the listener asked for, until
	// their connection is admitted (see Pool.ReverseOptions).
	bound  map[*agentv2.RegistrationRequest]*SubConn
	closed bool
	// agreedBy are the ready connections caps was agreed by.
	agreedBy []*SubConn
}

// eventCounters count the events that entered and left an agent's
// pipeline: two counters rather than requests and in-flight, for one
// atomic operation per event fewer. Every event writes them, from every
// core: the padding keeps them off the cache lines of the fields every
// event reads.
type eventCounters struct {
	_        [64]byte
	started  atomic.Uint64 // also the Requests statistic
	finished atomic.Uint64
	_        [48]byte
}

// inFlight is the number of events in the pipeline. finished is read
// first: a zero is then a moment when nothing was in flight.
func (c *eventCounters) inFlight() int64 {
	f := c.finished.Load()
	return int64(c.started.Load() - f)
}

// instance is one endpoint of an agent and the slots that keep connections
// to it.
type instance struct {
	endpoint string
	ctx      context.Context
	cancel   context.CancelFunc
	// grace is how long a retiring connection may drain; written before
	// cancel, read after ctx.Done.
	grace time.Duration
}

// snapshot is what the hot path reads: an immutable picker, the ready
// connections it picks from (to fall back on when a pick went stale) and
// the paused connections to fall back on when nothing is ready.
type snapshot struct {
	picker balancer.Picker
	ready  []*SubConn
	paused []*SubConn
}

func newAgent(p *Pool, id string, cfg agentConfig, endpoint string) *agent {
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{
		p:         p,
		id:        id,
		cfg:       cfg,
		endpoint:  endpoint,
		idle:      make(chan struct{}, 1),
		breaker:   breaker.New(cfg.breaker),
		aff:       affinity.New[*SubConn](cfg.maxAffinities, cfg.affinityTTL),
		sticky:    affinity.New[*SubConn](cfg.maxSessions, cfg.sessionTTL),
		ctx:       ctx,
		cancel:    cancel,
		force:     make(chan struct{}),
		instances: make(map[string]*instance),
	}
	a.aff.OnZero = a.pokeIdle
	a.bal = cfg.builder.Build(balancer.BuildOptions{AgentID: id, Rand: p.cfg.rand})
	a.snap.Store(&snapshot{picker: a.bal.UpdateState(balancer.State{})})
	a.caps.Store(&Capabilities{})
	return a
}

func (a *agent) pokeIdle() {
	if a.draining.Load() {
		select {
		case a.idle <- struct{}{}:
		default:
		}
	}
}

// transportOptions are the options of a connection the agent dials for
// sc, whose status it pushes to sc.
func (a *agent) transportOptions(sc *SubConn) []transport.Option {
	opts := make([]transport.Option, 0, len(a.cfg.transportOpts)+2)
	opts = append(opts, a.cfg.transportOpts...)
	return append(opts, a.p.handlerOptions(a.id, sc.listen)...)
}

// setInstances makes the agent's endpoints eps: new ones get connection
// slots, missing ones are retired after draining. first receives the
// result of each new slot's first dial; n is how many will arrive.
func (a *agent) setInstances(eps []string) (first chan error, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, 0
	}
	keep := make(map[string]bool, len(eps))
	for _, ep := range eps {
		keep[ep] = true
	}
	for ep, in := range a.instances {
		if !keep[ep] {
			in.grace = a.cfg.drainTimeout
			in.cancel()
			delete(a.instances, ep)
			a.p.cfg.logger.Info("pool: agent instance removed", "agent", a.id, "endpoint", ep)
		}
	}
	var added []string
	for _, ep := range eps {
		if _, ok := a.instances[ep]; !ok && !slices.Contains(added, ep) {
			added = append(added, ep)
		}
	}
	first = make(chan error, len(added)*a.cfg.conns)
	for _, ep := range added {
		ctx, cancel := context.WithCancel(a.ctx)
		in := &instance{endpoint: ep, ctx: ctx, cancel: cancel}
		a.instances[ep] = in
		for range a.cfg.conns {
			a.wg.Add(1)
			go a.runSlot(in, first)
		}
		if len(a.instances) > 1 || a.endpoint != ep {
			a.p.cfg.logger.Info("pool: agent instance added", "agent", a.id, "endpoint", ep)
		}
	}
	return first, len(added) * a.cfg.conns
}

// runSlot keeps one connection to in open until in ends: it dials, with
// backoff and jitter after failures (never giving up), installs the
// connection, and replaces it as soon as it fails.
func (a *agent) runSlot(in *instance, first chan<- error) {
	defer a.wg.Done()
	bo := a.p.newBackoff()
	stable := 10 * a.p.cfg.backoffBase
	for {
		sc, c, installed, err := a.connect(in)
		if err != nil {
			if first != nil {
				first <- err
				first = nil
			}
			if in.ctx.Err() != nil {
				return
			}
			d := bo.next()
			a.p.cfg.logger.Debug("pool: connecting failed", "agent", a.id, "endpoint", in.endpoint, "retry_in", d, "error", err)
			if !sleep(in.ctx, d) {
				return
			}
			continue
		}
		if first != nil {
			// Only now may AddAgent return: the connection takes requests.
			first <- nil
			first = nil
		}
		if !installed {
			closeConn(c)
			return
		}
		select {
		case <-c.Done():
			a.uninstall(sc)
			closeConn(c)
			a.p.cfg.logger.Info("pool: connection lost", "agent", a.id, "conn", sc.id, "error", c.Err())
			if a.p.cfg.now().Sub(sc.since) >= stable {
				bo.reset()
				continue
			}
			if !sleep(in.ctx, bo.next()) {
				return
			}
		case <-in.ctx.Done():
			a.retireConn(sc, in.grace)
			return
		}
	}
}

// connect dials in's endpoint and installs the connection. installed is
// false when the agent closed meanwhile; the caller then closes c.
func (a *agent) connect(in *instance) (sc *SubConn, c transport.Conn, installed bool, err error) {
	sc = a.newSubConn(in.endpoint, false)
	c, err = a.p.cfg.dialer(in.ctx, in.endpoint, a.transportOptions(sc)...)
	if err != nil {
		return nil, nil, false, err
	}
	return sc, c, a.install(sc, c), nil
}

// watchReverse owns an adopted connection: it removes it when it fails and
// retires it when the agent closes.
func (a *agent) watchReverse(sc *SubConn) {
	defer a.wg.Done()
	select {
	case <-sc.conn.Done():
		a.uninstall(sc)
		closeConn(sc.conn)
	case <-a.ctx.Done():
		a.retireConn(sc, 0)
	}
}

func (a *agent) newSubConn(endpoint string, reverse bool) *SubConn {
	a.mu.Lock()
	a.seq++
	n := a.seq
	a.mu.Unlock()
	return newSubConn(a, a.id+"/"+strconv.Itoa(n), endpoint, reverse)
}

// install publishes a connection; false means the agent is closed.
func (a *agent) install(sc *SubConn, c transport.Conn) bool {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return false
	}
	a.installLocked(sc, c)
	ch := a.rebuildLocked()
	a.mu.Unlock()
	a.report(ch)
	a.noticeLate(sc)
	return true
}

// noticeLate sends the drain notice to a connection installed after the
// agent started draining.
func (a *agent) noticeLate(sc *SubConn) {
	if msg := a.notice.Load(); msg != nil {
		ctx, cancel := context.WithTimeout(a.ctx, time.Second)
		defer cancel()
		_ = sc.conn.Notify(ctx, msg.CloneVT())
	}
}

func (a *agent) installLocked(sc *SubConn, c transport.Conn) {
	sc.conn, sc.recv = c, receiverOf(c)
	sc.gather, _ = c.(gatherer)
	// A connection built with the pool's listener pushed its first status
	// before its dial returned; one built without is read now and at each
	// probe tick.
	if sc.pushed = sc.status.Load() != nil; !sc.pushed {
		sc.setStatus(c.Status())
	}
	limit := a.cfg.maxConcurrency
	if m := int(c.Capabilities().GetLimits().GetMaxConcurrency()); m > 0 && m < limit {
		limit = m
	}
	sc.slots.Init(limit)
	sc.since = a.p.cfg.now()
	// A connection joining after a config push is configuring until the
	// config component has replayed it (see agent.replay).
	sc.setFlag(flagConfiguring, a.config.Load() != nil)
	a.conns = append(a.conns, sc)
	if sc.reverse {
		a.reverse++
	}
}

// uninstall removes a failed connection at once; the requests it held are
// lost.
func (a *agent) uninstall(sc *SubConn) {
	a.mu.Lock()
	installed := slices.Contains(a.conns, sc)
	ch := a.removeLocked(sc)
	if old := ConnState(sc.state.Swap(int32(ConnClosed))); old != ConnClosed {
		ch = append(ch, stateChange{sc, old, ConnClosed})
	}
	a.mu.Unlock()
	a.report(ch)
	a.aff.MarkLost(sc)
	if installed {
		switch err := sc.conn.Err(); {
		case errors.Is(err, transport.ErrProtocol):
			a.violations.Add(1)
		case errors.Is(err, transport.ErrUnresponsive):
			a.unresponsive.Add(1)
		}
	}
}

func (a *agent) removeLocked(sc *SubConn) []stateChange {
	i := slices.Index(a.conns, sc)
	if i < 0 {
		return nil
	}
	a.conns = slices.Delete(a.conns, i, i+1)
	if sc.reverse {
		a.reverse--
	}
	return a.rebuildLocked()
}

// retireConn takes sc out of service, lets its in-flight events finish for
// up to grace (less if the agent closes), and closes it.
func (a *agent) retireConn(sc *SubConn, grace time.Duration) {
	a.mu.Lock()
	// Out of the picker first: a pick from an older picker that comes after
	// retire fails to take a slot and picks again.
	ch := a.removeLocked(sc)
	sc.slots.Retire()
	if old := ConnState(sc.state.Swap(int32(ConnRetired))); old != ConnRetired {
		ch = append(ch, stateChange{sc, old, ConnRetired})
	}
	a.mu.Unlock()
	a.report(ch)
	if grace > 0 {
		t := time.NewTimer(grace)
		select {
		case <-sc.slots.Idle():
		case <-t.C:
		case <-a.force:
		case <-sc.conn.Done():
		}
		t.Stop()
	}
	closeConn(sc.conn)
	if old := ConnState(sc.state.Swap(int32(ConnClosed))); old != ConnClosed {
		a.report([]stateChange{{sc, old, ConnClosed}})
	}
	a.aff.MarkLost(sc)
}

func closeConn(c transport.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = c.Close(ctx)
}

// connList returns the installed connections.
func (a *agent) connList() []*SubConn {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.conns)
}

// startDrain marks the agent draining and sends msg, a drain notice, on
// every connection (and, through noticeLate, on those installed later),
// ignoring failures: a connection that cannot take a notice is going away
// anyway.
func (a *agent) startDrain(ctx context.Context, msg *agentv2.ProxyToAgent) {
	a.draining.Store(true)
	a.notice.CompareAndSwap(nil, msg)
	for _, sc := range a.connList() {
		if err := sc.conn.Notify(ctx, msg.CloneVT()); err != nil {
			a.p.cfg.logger.Debug("pool: notice not sent", "agent", a.id, "conn", sc.id, "error", err)
		}
	}
}

// waitIdle waits until no event is in flight and no request is open, or ctx
// ends. a.draining must be set.
func (a *agent) waitIdle(ctx context.Context) error {
	for a.events.inFlight() != 0 || a.aff.Live() != 0 {
		select {
		case <-a.idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// close stops everything the agent runs and closes its connections at once;
// it returns when every goroutine of the agent has exited. Idempotent.
func (a *agent) close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		a.cancel()
		close(a.force)
	}
	a.mu.Unlock()
	a.wg.Wait()
	a.mu.Lock()
	if a.bal != nil {
		a.bal.Close()
		a.bal = nil
		a.snap.Store(&snapshot{picker: balancer.Empty{}})
	}
	a.mu.Unlock()
}
