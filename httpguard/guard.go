package httpguard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"golang.org/x/net/http/httpguts"

	"github.com/agentwire/agentwire/events"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// Guard puts chains of agents, reached through a pool, in front of HTTP
// handlers. It is safe for concurrent use; its configuration is fixed at
// [New].
type Guard struct {
	pool    *pool.Pool
	cfg     config
	router  *router
	clock   events.Option
	prefix  string
	seq     atomic.Uint64
	bg      context.Context // ends at Close: request_complete sends and cancels
	stopBg  context.CancelFunc
	mu      sync.Mutex // guards closed and the Add of pending
	closed  bool
	pending sync.WaitGroup // request_complete sends in flight
}

// New returns a guard over p with the routes and settings of opts. It
// fails on a route without agents or an invalid pattern or setting.
func New(p *pool.Pool, opts ...Option) (*Guard, error) {
	cfg := config{logger: slog.Default(), now: time.Now, challenge: DefaultChallenge, chunkSize: DefaultChunkSize}
	for _, o := range opts {
		o.applyGuard(&cfg)
	}
	if cfg.propagator == nil {
		cfg.propagator = otel.GetTextMapPropagator()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rr, err := newRouter(cfg.routes)
	if err != nil {
		return nil, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	g := &Guard{pool: p, cfg: cfg, router: rr, clock: events.WithClock(cfg.now), prefix: hex.EncodeToString(b[:]) + "-"}
	g.bg, g.stopBg = context.WithCancel(context.Background())
	for _, rt := range cfg.routes {
		rt.eventOpts = []events.Option{g.clock, events.WithRoute(rt.id, rt.upstream)}
	}
	return g, nil
}

// Middleware returns next guarded: requests of a route go through its
// chain before next sees them, and their responses before the client
// does. Requests that match no route go to next unguarded.
func (g *Guard) Middleware(next http.Handler) http.Handler { return &handler{g: g, next: next} }

// Close waits for the request_complete events still being sent, up to
// ctx's end, then abandons them. Requests served after Close end at their
// agents with a cancel. Close is idempotent.
func (g *Guard) Close(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.pending.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	g.stopBg()
	<-done
	return err
}

// AgentStats counts the failures of one agent on one route.
type AgentStats struct {
	Route, Agent             string
	FailedOpen, FailedClosed uint64
}

// Stats returns the failure counts of every agent of every route.
func (g *Guard) Stats() []AgentStats {
	var out []AgentStats
	for _, rt := range g.cfg.routes {
		for _, a := range rt.agents {
			out = append(out, AgentStats{Route: rt.id, Agent: a.id,
				FailedOpen: a.stats.failedOpen.Load(), FailedClosed: a.stats.failedClosed.Load()})
		}
	}
	return out
}

func (g *Guard) newID(r *http.Request) string {
	if g.cfg.newID != nil {
		return g.cfg.newID(r)
	}
	return string(strconv.AppendUint([]byte(g.prefix), g.seq.Add(1), 36))
}

type handler struct {
	g    *Guard
	next http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := h.g.router.route(r)
	if rt == nil {
		h.next.ServeHTTP(w, r)
		return
	}
	x := h.g.begin(rt, r)
	abort := false
	defer func() {
		x.finish()
		if abort {
			// The response cannot be unsent: cut it so the client sees it
			// fail rather than end as if complete.
			panic(http.ErrAbortHandler)
		}
	}()
	ev := x.requestHeaders(r)
	x.ask(kindRequestHeaders, func(_ int, alone bool) *agentv2.ProxyToAgent {
		if alone {
			return ev // agents asked one at a time share it
		}
		return copyRequestHeaders(ev)
	})
	if !x.stopped() {
		applyRequestOps(r, x.takeOps(kindRequestHeaders))
	}
	var rb io.ReadCloser
	if r.Body != nil && r.Body != http.NoBody && !x.stopped() {
		rb = &counted{ReadCloser: r.Body, n: &x.received}
		if x.wants(kindRequestBody) {
			b := newBody(x, r.Body, r.ContentLength)
			b.fixed = r.ContentLength >= 0
			if x.needy(kindRequestBody) {
				b.fill()
			}
			rb = b
		}
	}
	if x.stopped() {
		x.respond(w, r)
		return
	}
	r2 := r.WithContext(x)
	if rb != nil {
		r2.Body = rb
	}
	x.w = writer{w: w, x: x, r: r2}
	h.next.ServeHTTP(&x.w, r2)
	abort = x.w.end()
}

// begin starts the exchange of r on rt.
func (g *Guard) begin(rt *route, r *http.Request) *exchange {
	x := &exchange{Context: r.Context(), g: g, rt: rt, corr: g.newID(r), start: g.cfg.now()}
	if isUpgrade(r) {
		x.session = x.corr
	}
	if len(rt.agents) <= len(x.stateBuf) {
		x.state = x.stateBuf[:len(rt.agents)]
	} else {
		x.state = make([]agentState, len(rt.agents))
	}
	for i := range x.state {
		x.state[i].events = g.declared(&rt.agents[i])
		x.wanted |= x.state[i].events
	}
	x.audit.CorrelationID, x.audit.RouteID = x.corr, rt.id
	return x
}

// finish ends the request at every agent that still has it open: a
// request_complete (sent in the background) when it ended normally and the
// agent asked for it, a cancel with the reason otherwise, which also fails
// the agent's events still in flight.
func (x *exchange) finish() {
	x.mu.Lock()
	x.done = true
	reason, blocker := x.reason, x.audit.DecidedBy
	switch {
	case reason != agentv2.CancelReason_CANCEL_REASON_UNSPECIFIED:
	case x.Err() != nil:
		reason = agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT
	case x.upstreamErr != nil:
		reason = agentv2.CancelReason_CANCEL_REASON_UPSTREAM_ERROR
	}
	x.mu.Unlock()
	g := x.g
	var (
		complete *agentv2.ProxyToAgent
		cancel   *agentv2.CancelRequest
	)
	for i := range x.state {
		st := &x.state[i]
		if !st.open {
			continue
		}
		a := &x.rt.agents[i]
		if reason == agentv2.CancelReason_CANCEL_REASON_UNSPECIFIED && st.events&RequestComplete != 0 && !st.out {
			if complete == nil {
				complete = events.RequestComplete(x.corr, events.Completion{Status: x.status, Duration: g.cfg.now().Sub(x.start),
					BytesReceived: uint64(x.received.Load()), BytesSent: uint64(x.sent.Load()), Upstream: x.rt.upstream})
			}
			if g.sendComplete(a, x.corr, complete) {
				continue
			}
		}
		if cancel == nil {
			cancel = x.cancelRequest(reason, blocker)
		}
		if err := g.pool.Cancel(g.bg, a.id, cancel); err != nil && !isUnknownRequest(err) {
			g.cfg.logger.Debug("httpguard: cancel not sent", "agent", a.id, "correlation_id", x.corr, "error", err)
		}
	}
	if x.session != "" {
		for i := range x.rt.agents {
			g.pool.EndSession(x.rt.agents[i].id, x.session)
		}
	}
	x.log(reason)
}

// isUpgrade reports whether r asks to switch protocols (a websocket).
func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" && httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade")
}

// sendComplete sends ev to a in the background; false once the guard is
// closed.
func (g *Guard) sendComplete(a *agentSpec, corr string, ev *agentv2.ProxyToAgent) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.pending.Add(1)
	// Each agent gets its own envelope: the connection writes its event id.
	ev = &agentv2.ProxyToAgent{Message: ev.Message}
	id, timeout := a.id, a.timeout
	go func() {
		defer g.pending.Done()
		ctx, cancel := context.WithTimeout(g.bg, timeout)
		defer cancel()
		if _, err := g.pool.Send(ctx, id, ev); err != nil {
			g.cfg.logger.Debug("httpguard: request_complete not delivered", "agent", id, "correlation_id", corr, "error", err)
		}
	}()
	return true
}

// counted counts the bytes of a request body no agent inspects.
type counted struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
