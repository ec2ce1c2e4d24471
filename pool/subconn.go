package pool

import (
	"math"
	"sync/atomic"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool/balancer"
	"github.com/agentwire/agentwire/pool/internal/limiter"
	"github.com/agentwire/agentwire/transport"
)

// ConnState is the pool's view of one connection: the state its transport
// pushes ([transport.State], with the agent's health) under the pool's own
// flags. The first line that applies wins:
//
//	transport StateClosed                 ConnClosed
//	pool: retired                         ConnRetired
//	pool: configuring (config replay)     ConnConfiguring
//	pool: failing (probed until it answers) ConnFailing
//	transport StateUnhealthy              ConnUnhealthy
//	transport StateDraining               ConnDraining
//	transport StatePaused                 ConnPaused
//	StateReady, health DEGRADED           ConnDegraded
//	StateReady                            ConnReady
//
// Only ConnReady and ConnDegraded take new requests.
type ConnState int32

const (
	// ConnReady takes new requests.
	ConnReady ConnState = iota + 1
	// ConnDegraded takes new requests; the agent reports itself degraded,
	// which lowers its weight.
	ConnDegraded
	// ConnPaused: the agent paused the connection (flow control).
	ConnPaused
	// ConnDraining: the agent reported draining; no new requests.
	ConnDraining
	// ConnUnhealthy: the agent reported itself unhealthy; no new requests.
	ConnUnhealthy
	// ConnFailing: consecutive transport failures took the connection out
	// until a probe ping answers.
	ConnFailing
	// ConnRetired: taken out of service (its instance left DNS, or its agent
	// is being removed); it finishes in-flight events, then closes.
	ConnRetired
	// ConnClosed: the connection is gone.
	ConnClosed
	// ConnConfiguring: just connected; the agent's last pushed
	// configuration (see [Pool.PushConfig]) is being replayed to it, and it
	// takes requests once the agent has answered.
	ConnConfiguring
)

var connStateNames = [...]string{"unknown", "ready", "degraded", "paused", "draining", "unhealthy", "failing", "retired", "closed", "configuring"}

func (s ConnState) String() string {
	if s < 0 || int(s) >= len(connStateNames) {
		return "unknown"
	}
	return connStateNames[s]
}

// pickable reports whether the state takes new requests.
func (s ConnState) pickable() bool { return s == ConnReady || s == ConnDegraded }

// Pool-only flags of a connection (SubConn.flags); retirement lives in
// its slots word (see package limiter).
const (
	flagConfiguring uint32 = 1 << iota
	flagFailing
)

// SubConn is one pooled connection; balancers see it as a
// [balancer.SubConn]. Its methods are safe for concurrent use.
type SubConn struct {
	// slots is the connection's one pool-side count, written by every
	// event: the events sent or waiting to be, with retirement in its
	// high bits. requests too is written by every event: both first, on
	// their own cache line, away from the fields every event reads.
	requests atomic.Uint64
	slots    limiter.Limiter
	_        [64]byte

	agent    *agent
	id       string
	endpoint string // the instance it belongs to ("reverse" for adopted connections)
	reverse  bool
	// conn is set before the SubConn is published and never changes, and
	// so are recv, its receive counter, and gather, its batching hint
	// (nil where the connection has none).
	conn   transport.Conn
	recv   transport.Receiver
	gather gatherer
	// pushed: conn tells the SubConn its status (the pool's listener was
	// given at dial); otherwise the probe tick reads it.
	pushed bool
	// since is when it was installed.
	since time.Time

	errors      atomic.Uint64
	consecutive atomic.Int32
	flags       atomic.Uint32
	// lossCounted is set once the connection's end or silence has been
	// counted against the agent's breaker (see exchange.breakerCounts).
	lossCounted atomic.Bool

	// state is derived from status and the flags at each rebuild; status
	// is the last status the transport pushed.
	state  atomic.Int32
	status atomic.Pointer[transport.Status]
	// errRate and latencyEWMA are decaying averages kept by the probe tick
	// (float64 bits and nanoseconds); latencyNs and sampled sum the
	// latencies measured (one event in latencySample).
	errRate, latencyNs, sampled atomic.Uint64
	latencyEWMA                 atomic.Int64

	// last* are the totals at the previous tick; only the tick touches them.
	lastRequests, lastErrors, lastLatency, lastSampled uint64
}

var _ balancer.SubConn = (*SubConn)(nil)

// gatherer is implemented by connections that batch writes (see
// transport's session.Gathering); asserted once, at installation.
type gatherer interface{ Gathering() bool }

func newSubConn(a *agent, id, endpoint string, reverse bool) *SubConn {
	return &SubConn{agent: a, id: id, endpoint: endpoint, reverse: reverse}
}

// ID names the connection within its pool ("agent/endpoint#n").
func (sc *SubConn) ID() string { return sc.id }

// AgentID is the id of the agent the connection belongs to.
func (sc *SubConn) AgentID() string { return sc.agent.id }

// Endpoint is the instance the connection goes to.
func (sc *SubConn) Endpoint() string { return sc.endpoint }

// Conn is the transport connection.
func (sc *SubConn) Conn() transport.Conn { return sc.conn }

// InFlight is the number of events that hold one of the connection's
// concurrency slots or wait for one: the pool's one count per connection,
// taken when an event is routed and returned when it ends.
func (sc *SubConn) InFlight() int64 { return sc.slots.InFlight() }

// Gathering reports whether an event sent on the connection now would share
// a system call with writes it is already gathering; false where the
// transport does not batch writes that way.
func (sc *SubConn) Gathering() bool { return sc.gather != nil && sc.gather.Gathering() }

// State is the connection's state as of the last rebuild.
func (sc *SubConn) State() ConnState { return ConnState(sc.state.Load()) }

// Health is the agent's last reported health on this connection.
func (sc *SubConn) Health() agentv2.HealthState {
	if st := sc.status.Load(); st != nil {
		return st.Health
	}
	return agentv2.HealthState_HEALTH_STATE_UNSPECIFIED
}

// Load is the load the agent last reported on this connection, or nil.
func (sc *SubConn) Load() *agentv2.LoadMetrics {
	if st := sc.status.Load(); st != nil {
		return st.Load
	}
	return nil
}

// ErrorRate is the connection's recent error rate in [0, 1], an
// exponentially decaying average over probe ticks.
func (sc *SubConn) ErrorRate() float64 { return math.Float64frombits(sc.errRate.Load()) }

// gone reports whether the transport connection has ended.
func (sc *SubConn) gone() bool {
	select {
	case <-sc.conn.Done():
		return true
	default:
		return false
	}
}

// setStatus records a status the transport pushed; it reports false for
// one that comes after the connection closed, which changes nothing.
func (sc *SubConn) setStatus(st transport.Status) bool {
	if old := sc.status.Load(); old != nil && old.State == transport.StateClosed {
		return false
	}
	sc.status.Store(&st)
	return true
}

// setFlag sets or clears a pool flag; it reports whether that changed it.
func (sc *SubConn) setFlag(f uint32, on bool) bool {
	if on {
		return sc.flags.Or(f)&f == 0
	}
	return sc.flags.And(^f)&f != 0
}

// computeState derives the pool state (see [ConnState]).
func (sc *SubConn) computeState() ConnState {
	var st transport.Status
	if p := sc.status.Load(); p != nil {
		st = *p
	}
	flags := sc.flags.Load()
	switch {
	case st.State == transport.StateClosed:
		return ConnClosed
	case sc.slots.Retired():
		return ConnRetired
	case flags&flagConfiguring != 0:
		return ConnConfiguring
	case flags&flagFailing != 0:
		return ConnFailing
	case st.State == transport.StateUnhealthy:
		return ConnUnhealthy
	case st.State == transport.StateDraining:
		return ConnDraining
	case st.State == transport.StatePaused:
		return ConnPaused
	case st.Health == agentv2.HealthState_HEALTH_STATE_DEGRADED:
		return ConnDegraded
	}
	return ConnReady
}

// latencySample: the end of one event in latencySample is timed (the
// first, then every latencySample-th): a clock read costs as much as the
// rest of the pool's work on an event, and the averages need no more.
const latencySample = 16

// ewmaAlpha weighs the newest tick in decaying averages.
const ewmaAlpha = 0.3

// decay folds the counters since the previous tick into the decaying error
// rate and latency. Only the probe tick calls it.
func (sc *SubConn) decay() {
	req, errs, lat, n := sc.requests.Load(), sc.errors.Load(), sc.latencyNs.Load(), sc.sampled.Load()
	dr, de, dl, dn := req-sc.lastRequests, errs-sc.lastErrors, lat-sc.lastLatency, n-sc.lastSampled
	sc.lastRequests, sc.lastErrors, sc.lastLatency, sc.lastSampled = req, errs, lat, n
	rate := sc.ErrorRate()
	if dr > 0 {
		rate = (1-ewmaAlpha)*rate + ewmaAlpha*float64(de)/float64(dr)
	} else {
		// No traffic: the memory of old errors fades.
		rate *= 1 - ewmaAlpha
	}
	if dn > 0 {
		avg := int64(dl / dn)
		if old := sc.latencyEWMA.Load(); old == 0 {
			sc.latencyEWMA.Store(avg)
		} else {
			sc.latencyEWMA.Store(int64((1-ewmaAlpha)*float64(old) + ewmaAlpha*float64(avg)))
		}
	}
	sc.errRate.Store(math.Float64bits(rate))
}
