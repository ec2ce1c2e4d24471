package pool

import (
	"math"
	"sync/atomic"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// ConnState is the pool's view of one connection.
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

func (s ConnState) String() string {
	switch s {
	case ConnReady:
		return "ready"
	case ConnDegraded:
		return "degraded"
	case ConnPaused:
		return "paused"
	case ConnDraining:
		return "draining"
	case ConnUnhealthy:
		return "unhealthy"
	case ConnFailing:
		return "failing"
	case ConnRetired:
		return "retired"
	case ConnClosed:
		return "closed"
	case ConnConfiguring:
		return "configuring"
	}
	return "unknown"
}

// pickable reports whether the state takes new requests.
func (s ConnState) pickable() bool { return s == ConnReady || s == ConnDegraded }

// SubConn is one pooled connection as balancers see it. Its methods are safe
// for concurrent use.
type SubConn struct {
	// Every event writes holds, requests, latencyNs and limit's counter:
	// kept together, first, they share one or two cache lines, away from
	// the fields below that every event reads.

	// holds counts the events routed to the connection and not ended, with
	// the retired and closing flags in its high bits, so that taking a hold
	// and retiring agree on who saw what (see tryHold and retire).
	holds     atomic.Int64
	requests  atomic.Uint64
	latencyNs atomic.Int64
	// limit is set up before the SubConn is published.
	limit limiter

	agent    *agent
	id       string
	endpoint string // the instance it belongs to ("reverse" for adopted connections)
	reverse  bool
	// conn is set before the SubConn is published and never changes, and
	// so is recv, its receive counter (nil if it keeps none).
	conn transport.Conn
	recv transport.Receiver
	// since is when it was installed.
	since time.Time

	errors      atomic.Uint64
	consecutive atomic.Int32
	failing     atomic.Bool
	// configuring is set from installation until the agent's
	// configuration has been replayed to the connection.
	configuring atomic.Bool
	// lossCounted is set once the connection's end or silence has been
	// counted against the agent's breaker (see exchange.breakerCounts).
	lossCounted atomic.Bool
	idle        chan struct{} // closed once retired and without events in flight

	state  atomic.Int32
	status atomic.Pointer[transport.Status]
	// errRate and latencyEWMA are decaying averages kept by the probe tick
	// (float64 bits and nanoseconds).
	errRate     atomic.Uint64
	latencyEWMA atomic.Int64

	// last* are the totals at the previous tick; only the tick touches them.
	lastRequests, lastErrors uint64
	lastLatency              int64
}

func newSubConn(a *agent, id, endpoint string, reverse bool) *SubConn {
	return &SubConn{agent: a, id: id, endpoint: endpoint, reverse: reverse, idle: make(chan struct{})}
}

// ID names the connection within its pool ("agent/endpoint#n").
func (sc *SubConn) ID() string { return sc.id }

// AgentID is the id of the agent the connection belongs to.
func (sc *SubConn) AgentID() string { return sc.agent.id }

// Endpoint is the instance the connection goes to.
func (sc *SubConn) Endpoint() string { return sc.endpoint }

// Conn is the transport connection.
func (sc *SubConn) Conn() transport.Conn { return sc.conn }

// InFlight is the number of events routed to the connection that have not
// ended, including those waiting for a concurrency slot.
func (sc *SubConn) InFlight() int64 { return sc.holds.Load() & holdCount }

// Gathering reports whether an event sent on the connection now would share
// a system call with writes it is already gathering (see
// transport.Conn.Gathering).
func (sc *SubConn) Gathering() bool { return sc.conn.Gathering() }

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

// computeState derives the pool state from the transport's status.
func (sc *SubConn) computeState(st transport.Status) ConnState {
	switch {
	case st.State == transport.StateClosed:
		return ConnClosed
	case sc.holds.Load()&holdRetired != 0:
		return ConnRetired
	case sc.configuring.Load():
		return ConnConfiguring
	case sc.failing.Load():
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

// Bits of SubConn.holds.
const (
	// holdRetired: out of service; only events of requests already pinned
	// to the connection may still take a hold.
	holdRetired int64 = 1 << 62
	// holdClosing: retired with nothing in flight; it is being closed and
	// takes no hold at all.
	holdClosing int64 = 1 << 61
	holdCount         = holdClosing - 1
)

// tryHold counts one more event on the connection. It fails if the
// connection is closing, or retired and the event is not pinned to it: the
// caller must then route the event elsewhere. Retirement and holds are
// ordered by the one atomic word, so a retiring connection is never closed
// under an event that got a hold.
func (sc *SubConn) tryHold(pinned bool) bool {
	for {
		v := sc.holds.Load()
		if v&holdClosing != 0 || (!pinned && v&holdRetired != 0) {
			return false
		}
		if sc.holds.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// release ends one event's hold on the connection.
func (sc *SubConn) release() {
	if v := sc.holds.Add(-1); v == holdRetired && sc.holds.CompareAndSwap(v, v|holdClosing) {
		close(sc.idle)
	}
}

// retire marks the connection out of service; sc.idle is closed once it
// has nothing in flight.
func (sc *SubConn) retire() {
	if v := sc.holds.Or(holdRetired); v&holdRetired == 0 && v&holdCount == 0 &&
		sc.holds.CompareAndSwap(holdRetired, holdRetired|holdClosing) {
		close(sc.idle)
	}
}

// ewmaAlpha weighs the newest tick in decaying averages.
const ewmaAlpha = 0.3

// decay folds the counters since the previous tick into the decaying error
// rate and latency. Only the probe tick calls it.
func (sc *SubConn) decay() {
	req, errs, lat := sc.requests.Load(), sc.errors.Load(), sc.latencyNs.Load()
	dr, de, dl := req-sc.lastRequests, errs-sc.lastErrors, lat-sc.lastLatency
	sc.lastRequests, sc.lastErrors, sc.lastLatency = req, errs, lat
	rate := sc.ErrorRate()
	if dr > 0 {
		rate = (1-ewmaAlpha)*rate + ewmaAlpha*float64(de)/float64(dr)
		avg := dl / int64(dr)
		old := sc.latencyEWMA.Load()
		if old == 0 {
			sc.latencyEWMA.Store(avg)
		} else {
			sc.latencyEWMA.Store(int64((1-ewmaAlpha)*float64(old) + ewmaAlpha*float64(avg)))
		}
	} else {
		// No traffic: the memory of old errors fades.
		rate *= 1 - ewmaAlpha
	}
	sc.errRate.Store(math.Float64bits(rate))
}
