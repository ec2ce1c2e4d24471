// Package balancer spreads an agent's new requests over its connections,
// as grpc-go's balancers do: a [Builder] makes a [Balancer] per agent,
// which turns the connections that may take requests into an immutable
// [Picker]; the pool swaps pickers atomically when membership, health or
// load change, so picking never blocks. Built in: [LeastInFlight] (the
// pool's default), [RoundRobin], [Weighted] and [Random].
package balancer

import (
	"errors"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// SubConn is one pooled connection as balancers see it; the pool's
// connections implement it. Its methods are safe for concurrent use.
type SubConn interface {
	// ID names the connection within its pool.
	ID() string
	// InFlight is the number of the pool's events holding or waiting for
	// one of the connection's concurrency slots.
	InFlight() int64
	// Gathering reports whether an event sent now would share a system
	// call with writes the connection is already gathering.
	Gathering() bool
	// Health and Load are the agent's last report on the connection.
	Health() agentv2.HealthState
	Load() *agentv2.LoadMetrics
	// ErrorRate is the connection's recent error rate in [0, 1].
	ErrorRate() float64
}

// Names of the built-in balancing policies.
const (
	// RoundRobin takes connections in turn.
	RoundRobin = "round_robin"
	// LeastInFlight picks two connections at random and takes the one with
	// fewer events in flight (power of two choices).
	LeastInFlight = "least_in_flight"
	// Weighted picks at random in proportion to a weight derived from the
	// agent's reported load, its health (degraded counts less) and the
	// connection's recent error rate.
	Weighted = "weighted"
	// Random picks uniformly at random.
	Random = "random"
)

var builtins = map[string]Builder{
	RoundRobin:    roundRobinBuilder{},
	LeastInFlight: leastInFlightBuilder{},
	Weighted:      weightedBuilder{},
	Random:        randomBuilder{},
}

// Get returns the built-in policy called name.
func Get(name string) (Builder, bool) {
	b, ok := builtins[name]
	return b, ok
}

// Builder creates the [Balancer] of one agent. Builders are stateless and
// safe for concurrent use.
type Builder interface {
	// Name names the policy in stats and logs.
	Name() string
	// Build returns a new balancer for the agent.
	Build(opts BuildOptions) Balancer
}

// BuildOptions is what a balancer may use.
type BuildOptions struct {
	AgentID string
	// Rand is the pool's random source, safe for concurrent use.
	Rand func() uint64
}

// Balancer turns the agent's usable connections into pickers. The pool
// calls UpdateState whenever membership, health or load changes, never
// concurrently with itself or Close, and publishes the returned picker
// atomically; in-flight picks may still use the previous one.
type Balancer interface {
	// UpdateState returns a picker over s.Conns, which are all ready and not
	// draining. It must not block, and must not keep s.Conns' backing array
	// (copy it if needed; the pool does not modify it afterwards).
	UpdateState(s State) Picker
	// Close releases the balancer.
	Close()
}

// State is the set of connections a picker chooses from.
type State struct {
	Conns []SubConn
}

// Picker chooses a connection for one event. A picker is immutable and its
// Pick is called concurrently from many goroutines; it must not block.
type Picker interface {
	// Pick returns a connection from the state it was built from, or an
	// error (which the pool returns to the caller).
	Pick(info PickInfo) (PickResult, error)
}

// PickInfo describes the event being routed.
type PickInfo struct {
	// CorrelationID is the request's id (empty for configure events).
	CorrelationID string
	// Event is the event's kind.
	Event agentv2.EventType
}

// PickResult is a picker's choice.
type PickResult struct {
	Conn SubConn
	// Done, if not nil, is called exactly once when the event ends, whatever
	// the outcome (including rejections before sending). It must not block.
	Done func(DoneInfo)
}

// DoneInfo reports how a picked event ended.
type DoneInfo struct {
	// Err is the event's error, nil on success.
	Err error
	// Latency is the time the agent took to answer, zero if not sent.
	Latency time.Duration
}

// ErrNoSubConn: the picker has no connection to choose from
// (CodeUnavailable); the pool's ErrNoConnAvailable is this error.
var ErrNoSubConn = errors.New("pool: no connection available")

var errNoConns = agentwire.NewError(agentwire.CodeUnavailable, ErrNoSubConn)

// Empty is the picker over no connections: it fails with [ErrNoSubConn].
type Empty struct{}

// Pick implements [Picker].
func (Empty) Pick(PickInfo) (PickResult, error) { return PickResult{}, errNoConns }

// bounded maps a random value to [0, n), n > 0. Modulo keeps fixed test
// sequences readable; its bias is negligible for pool-sized n.
func bounded(r uint64, n int) int { return int(r % uint64(n)) }
