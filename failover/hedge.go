package failover

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// Hedger sends a request's headers to a second connection of its agent
// when the first has not answered within the hedge delay; the first answer
// wins (see the package doc). It is safe for concurrent use.
type Hedger struct {
	cfg    hedgeConfig
	budget *budget
	counts *counts
	lat    map[string]*window // per hedged agent
	pool   atomic.Pointer[pool.Pool]

	ctx    context.Context // ends with Close: stops the losers' cancels
	cancel context.CancelFunc
	wg     sync.WaitGroup // hedges in flight and losers' cancels
	mu     sync.Mutex     // mu guards closed, and wg.Add against Close
	closed bool
}

var (
	_ pool.Interceptor        = (*Hedger)(nil)
	_ pool.UntimedInterceptor = (*Hedger)(nil)
	_ pool.Watcher            = (*Hedger)(nil)
)

// NewHedger returns a Hedger for the agents named by [WithHedgedAgents];
// give it to pool.WithInterceptors, inside an [Interceptor].
func NewHedger(opts ...HedgeOption) (*Hedger, error) {
	cfg := hedgeConfig{
		shared:   shared{now: time.Now},
		agents:   map[string]bool{},
		quantile: 0.95, initial: 50 * time.Millisecond,
		fraction: 0.05, burst: 10,
	}
	for _, o := range opts {
		o.applyHedge(&cfg)
	}
	switch {
	case len(cfg.agents) == 0:
		return nil, errors.New("failover: no hedged agent given")
	case cfg.delay < 0 || cfg.initial <= 0 || cfg.quantile <= 0 || cfg.quantile > 1:
		return nil, errors.New("failover: the hedge delay must be positive and the quantile in (0, 1]")
	case cfg.fraction < 0 || cfg.burst < 0:
		return nil, errors.New("failover: the hedging budget must not be negative")
	}
	c, err := newCounts(cfg.meterProvider, "agentwire.hedge.requests",
		"request headers whose answer was late, by what hedging did", "agentwire.hedge.outcome",
		Hedged, PrimaryWon, HedgeWon, HedgeNoBudget)
	if err != nil {
		return nil, err
	}
	h := &Hedger{cfg: cfg, budget: newBudget(cfg.burst, cfg.fraction), counts: c, lat: map[string]*window{}}
	for id := range cfg.agents {
		h.lat[id] = &window{}
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// Watch implements pool.Watcher: the hedger pins and cancels on the pool
// it wraps, and stops with it.
func (h *Hedger) Watch(p *pool.Pool) (stop func()) {
	h.pool.Store(p)
	return h.Close
}

// Close waits for the hedges in flight and the losers' cancels; it is
// idempotent. The pool calls it when it shuts down.
func (h *Hedger) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

// Stats returns how many hedging decisions ended in each outcome.
func (h *Hedger) Stats() map[Outcome]uint64 { return h.counts.stats() }

// Delay returns the hedge delay of agentID now.
func (h *Hedger) Delay(agentID string) time.Duration {
	if h.cfg.delay > 0 {
		return h.cfg.delay
	}
	if w := h.lat[agentID]; w != nil {
		if d := time.Duration(w.cached.Load()); d > 0 {
			return d
		}
	}
	return h.cfg.initial
}

// Untimed implements pool.UntimedInterceptor: it never reads Call.Duration.
func (*Hedger) Untimed() {}

// WrapSend implements pool.Interceptor.
func (h *Hedger) WrapSend(next pool.SendFunc) pool.SendFunc {
	return func(ctx context.Context, c *pool.Call) (*agentv2.AgentResponse, error) {
		if !h.cfg.agents[c.AgentID] || c.Type != agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS ||
			c.CorrelationID == "" || c.Reroute != nil {
			return next(ctx, c)
		}
		return h.hedge(ctx, next, c)
	}
}

// attempt is one of the two sends of hedged headers.
type attempt struct {
	call   pool.Call
	ctx    context.Context
	cancel context.CancelFunc
	start  time.Time
	conn   string // where it was sent, once routed; guarded by race.mu
	resp   *agentv2.AgentResponse
	err    error
}

// race is one hedged request: its attempts and which won.
type race struct {
	mu      sync.Mutex // mu guards the following and the attempts' conn
	winner  *attempt   // the first to answer without error
	hedge   *attempt   // nil unless sent
	over    bool       // the first attempt returned: no hedge from now on
	settled chan struct{}
}

func (h *Hedger) newAttempt(ctx context.Context, c pool.Call, rc *race, exclude string) *attempt {
	at := &attempt{call: c, start: h.cfg.now()}
	at.ctx, at.cancel = context.WithCancel(ctx)
	at.call.Reroute = &pool.Reroute{Pin: pool.PinNone, Exclude: exclude, Routed: func(id string) {
		rc.mu.Lock()
		at.conn = id
		rc.mu.Unlock()
	}}
	return at
}

// hedge sends c's headers, and a second time past the delay; the first
// answer wins and is pinned, the other attempt is cancelled.
func (h *Hedger) hedge(ctx context.Context, next pool.SendFunc, c *pool.Call) (*agentv2.AgentResponse, error) {
	h.budget.earn()
	rc := &race{settled: make(chan struct{})}
	first := h.newAttempt(ctx, *c, rc, "")
	defer first.cancel()
	// The transport writes into an event it sends: the hedge sends a copy,
	// made before the first send.
	base := *c
	base.Event = c.Event.CloneVT()
	timer := time.AfterFunc(h.Delay(c.AgentID), func() { h.launch(ctx, next, rc, first, base) })
	first.resp, first.err = next(first.ctx, &first.call)
	timer.Stop()
	rc.mu.Lock()
	rc.over = true
	if first.err == nil && rc.winner == nil {
		rc.winner = first
	}
	won, hedge := rc.winner, rc.hedge
	if hedge != nil && won == first {
		hedge.cancel()
	}
	rc.mu.Unlock()
	if won == nil && hedge != nil {
		// The first failed: the hedge may still answer.
		<-rc.settled
		rc.mu.Lock()
		won = rc.winner
		rc.mu.Unlock()
	}
	if won == nil {
		*c = restore(first.call, c.Reroute)
		return nil, first.err
	}
	switch {
	case won == hedge:
		// The first was cancelled, failed, or answered too late: its answer,
		// if any, is dropped.
		h.counts.add(c.AgentID, HedgeWon)
		h.cancelLoser(c.AgentID, c.CorrelationID, first)
	case hedge != nil:
		h.counts.add(c.AgentID, PrimaryWon)
	}
	h.lat[c.AgentID].add(h.cfg.now().Sub(won.start), h.cfg.quantile)
	*c = restore(won.call, c.Reroute)
	if !terminal(won.resp) && !won.call.FailOpen {
		if p := h.pool.Load(); p != nil {
			if err := p.Pin(c.AgentID, c.CorrelationID, won.call.ConnID); err != nil {
				return nil, err
			}
		}
	}
	return won.resp, nil
}

// launch sends the hedge if the first attempt is still out, was routed,
// and the budget allows.
func (h *Hedger) launch(ctx context.Context, next pool.SendFunc, rc *race, first *attempt, c pool.Call) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.over || first.conn == "" {
		return
	}
	agentID := c.AgentID
	if !h.budget.spend() {
		h.counts.add(agentID, HedgeNoBudget)
		return
	}
	h.counts.add(agentID, Hedged)
	hedge := h.newAttempt(ctx, c, rc, first.conn)
	rc.hedge = hedge
	if !h.spawn(func() { h.race(next, rc, first, hedge) }) {
		rc.hedge = nil
	}
}

// race runs the hedge and settles who won.
func (h *Hedger) race(next pool.SendFunc, rc *race, first, hedge *attempt) {
	defer close(rc.settled)
	defer hedge.cancel()
	agentID := hedge.call.AgentID
	resp, err := next(hedge.ctx, &hedge.call)
	rc.mu.Lock()
	hedge.resp, hedge.err = resp, err
	won := err == nil && rc.winner == nil
	if won {
		rc.winner = hedge
		first.cancel()
	}
	rc.mu.Unlock()
	if !won {
		h.cancelLoser(agentID, hedge.call.CorrelationID, hedge)
	}
}

// cancelLoser tells the connection of an attempt that lost to abandon the
// request, in the background.
func (h *Hedger) cancelLoser(agentID, corr string, at *attempt) {
	p := h.pool.Load()
	conn := at.call.ConnID
	if p == nil || conn == "" {
		return
	}
	h.spawn(func() {
		ctx, cancel := context.WithTimeout(h.ctx, cancelTimeout)
		defer cancel()
		_ = p.CancelOn(ctx, agentID, conn, &agentv2.CancelRequest{CorrelationId: corr, Reason: cancelReason})
	})
}

// spawn runs f in a goroutine Close waits for; false once closed.
func (h *Hedger) spawn(f func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
	return true
}

// restore is a finished attempt's Call, given back to the caller with its
// own Reroute.
func restore(c pool.Call, rr *pool.Reroute) pool.Call {
	c.Reroute = rr
	return c
}
