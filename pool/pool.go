package pool

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool/resolver"
	"github.com/agentwire/agentwire/transport"
)

// Pool keeps connections to agents and routes each event of a proxied
// exchange to one of them. It is safe for concurrent use by multiple
// goroutines. Every goroutine it starts has exited when [Pool.Shutdown]
// returns.
type Pool struct {
	cfg config
	// send is the interceptor chain around the pipeline (nil without
	// interceptors); built once in New.
	send SendFunc
	// timed: some interceptor reads Call.Duration (see UntimedInterceptor).
	timed bool

	// agents is replaced, never modified, under mu: the hot path reads it
	// without locks.
	agents atomic.Pointer[agentSet]
	state  atomic.Int32

	bg   context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu sync.Mutex // mu serialises changes to agents and state

	shutdownOnce sync.Once
	shutdownDone chan struct{}
	shutdownErr  error
}

const (
	poolOpen int32 = iota
	poolDraining
	poolClosed
)

// New returns a pool with no agents; add them with [Pool.AddAgent] or
// [Pool.AdoptConn].
func New(opts ...Option) (*Pool, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.applyPool(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.resolver == nil {
		cfg.resolver = net.DefaultResolver
	}
	bg, stop := context.WithCancel(context.Background())
	p := &Pool{cfg: cfg, bg: bg, stop: stop, shutdownDone: make(chan struct{})}
	p.agents.Store(newAgentSet(nil))
	p.useInterceptors()
	p.wg.Add(1)
	go p.maintain()
	return p, nil
}

func (p *Pool) newBackoff() *backoff {
	return &backoff{base: p.cfg.backoffBase, max: p.cfg.backoffMax, rand: p.cfg.rand}
}

// agentSet is an immutable set of agents by id.
type agentSet struct {
	byID map[string]*agent
	// few lists the agents when there are at most maxScan of them:
	// comparing a few ids costs less than hashing one.
	few []*agent
}

// maxScan is the most agents looked up by comparing ids in turn.
const maxScan = 4

func newAgentSet(m map[string]*agent) *agentSet {
	s := &agentSet{byID: m}
	if len(m) <= maxScan {
		s.few = slices.Collect(maps.Values(m))
	}
	return s
}

func (s *agentSet) get(id string) *agent {
	if len(s.byID) > maxScan {
		return s.byID[id]
	}
	for _, a := range s.few {
		if a.id == id {
			return a
		}
	}
	return nil
}

func (p *Pool) lookup(id string) *agent { return p.agents.Load().get(id) }

func (p *Pool) agentList() []*agent {
	m := p.agents.Load().byID
	ids := slices.Sorted(maps.Keys(m))
	out := make([]*agent, len(ids))
	for i, id := range ids {
		out[i] = m[id]
	}
	return out
}

func unknownAgent(id string) error {
	return agentwire.Errorf(agentwire.CodeNotFound, "%w %q", ErrUnknownAgent, id)
}

func (p *Pool) closedErr() error {
	if p.state.Load() == poolClosed {
		return agentwire.NewError(agentwire.CodeUnavailable, ErrClosed)
	}
	return agentwire.NewError(agentwire.CodeUnavailable, ErrDraining)
}

// register adds a to the pool; it fails if the id is taken or the pool no
// longer accepts agents.
func (p *Pool) register(a *agent) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state.Load() != poolOpen {
		return p.closedErr()
	}
	old := p.agents.Load().byID
	if _, ok := old[a.id]; ok {
		return agentwire.Errorf(agentwire.CodeAlreadyExists, "%w: %q", ErrAgentExists, a.id)
	}
	m := maps.Clone(old)
	if m == nil {
		m = make(map[string]*agent)
	}
	m[a.id] = a
	p.agents.Store(newAgentSet(m))
	return nil
}

// unregister removes a (if it is still the agent of its id) and reports
// whether it did.
func (p *Pool) unregister(a *agent) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.agents.Load().byID
	if old[a.id] != a {
		return false
	}
	m := maps.Clone(old)
	delete(m, a.id)
	p.agents.Store(newAgentSet(m))
	return true
}

// AddAgent adds an agent and connects to it. The endpoint names the
// transport explicitly:
//
//	unix:///run/waf.sock                   Unix socket
//	grpc://host:port, grpcs://host:port    gRPC (grpc-go)
//	http://host:port, https://host:port    Connect (gRPC protocol)
//	dns:///name:port?scheme=grpc           DNS discovery of instances (also interval=30s)
//
// The endpoint is dialled through the pool's [Dialer]. AddAgent returns once
// one connection is up, or with the dial error if every first attempt
// failed (the agent is then not added). Afterwards the pool keeps
// [WithConnections] connections to each instance, redialling with backoff
// forever. With DNS discovery an empty record set is not an error.
func (p *Pool) AddAgent(ctx context.Context, id, endpoint string, opts ...AgentOption) error {
	if id == "" {
		return agentwire.Errorf(agentwire.CodeInvalidArgument, "pool: empty agent id")
	}
	cfg := p.cfg.agent
	for _, o := range opts {
		o.applyAgent(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return agentwire.Errorf(agentwire.CodeInvalidArgument, "agent %q: %w", id, err)
	}
	t, err := resolver.Parse(endpoint, cfg.dnsInterval)
	if err != nil {
		return err
	}
	a := newAgent(p, id, cfg, endpoint)
	if err := p.register(a); err != nil {
		return err
	}
	if err := a.start(ctx, t); err != nil {
		p.unregister(a)
		a.close()
		return err
	}
	return nil
}

// start creates the agent's first instances and waits for a connection;
// with discovery, a watch keeps the instances in step with DNS.
func (a *agent) start(ctx context.Context, t resolver.Target) error {
	eps := []string{t.Endpoint}
	if t.Discover {
		var err error
		if eps, err = resolver.Resolve(ctx, a.p.cfg.resolver, t); err != nil {
			return agentwire.NewError(agentwire.CodeOf(err), fmt.Errorf("agent %q: %w", a.id, err))
		}
		a.wg.Go(func() {
			resolver.Watch(a.ctx, a.p.cfg.resolver, t, func(eps []string) { a.setInstances(eps) }, func(err error) {
				a.p.cfg.logger.Warn("pool: DNS discovery failed", "agent", a.id, "error", err)
			})
		})
	}
	first, n := a.setInstances(eps)
	var last error
	for range n {
		select {
		case err := <-first:
			if err == nil {
				return nil
			}
			last = err
		case <-ctx.Done():
			return agentwire.NewError(agentwire.CodeOf(agentwire.WrapContextError(ctx.Err())),
				fmt.Errorf("agent %q: connecting: %w", a.id, ctx.Err()))
		}
	}
	if last != nil {
		return agentwire.NewError(agentwire.CodeOf(last), fmt.Errorf("agent %q: %w", a.id, last))
	}
	return nil
}

// RemoveAgent takes an agent out of the pool: it stops sending it new
// requests, sends its connections a drain notice, waits (up to ctx) for its
// in-flight events and open requests, then closes its connections.
func (p *Pool) RemoveAgent(ctx context.Context, id string) error {
	a := p.lookup(id)
	if a == nil || a.removing.Swap(true) {
		return unknownAgent(id)
	}
	// The agent stays registered while it drains so that events of its open
	// requests still find it.
	err := a.drain(ctx, agentv2.DrainRequest_REASON_CONFIG_RELOAD)
	p.unregister(a)
	a.close()
	if err != nil {
		return agentwire.NewError(agentwire.CodeOf(agentwire.WrapContextError(err)),
			fmt.Errorf("agent %q removed before it drained: %w", id, err))
	}
	return nil
}

// ConnOptions returns the transport options the pool needs on connections
// of agentID that it does not dial itself (reverse connections passed to
// [Pool.AdoptConn]): state changes and health reports reach the pool at
// once, and config-update requests reach [WithConfigUpdateHandler]. Until
// AdoptConn the pool cannot tell which connection a status comes from: it
// re-reads the status of the agent's adopted connections when any of them
// reports (connections from a listener built with [Pool.ReverseOptions]
// push theirs to the pool directly).
func (p *Pool) ConnOptions(agentID string) []transport.Option {
	return p.handlerOptions(agentID, func(transport.Status) {
		if a := p.lookup(agentID); a != nil {
			a.poll()
		}
	})
}

// handlerOptions are the options of a connection of agentID whose status
// goes to listen.
func (p *Pool) handlerOptions(agentID string, listen func(transport.Status)) []transport.Option {
	return append(p.interceptorOptions(agentID),
		transport.WithStatusHandler(listen),
		transport.WithConfigUpdateHandler(func(ctx context.Context, req *agentv2.ConfigUpdateRequest) *agentv2.ConfigUpdateResponse {
			if f := p.cfg.onConfigUpdate; f != nil {
				return f(ctx, agentID, req)
			}
			return nil
		}),
	)
}

// Agents returns the ids of the pool's agents, sorted.
func (p *Pool) Agents() []string {
	return slices.Sorted(maps.Keys(p.agents.Load().byID))
}

// Instances returns the endpoints agent agentID currently has connection
// slots for (one per address with DNS discovery), sorted.
func (p *Pool) Instances(agentID string) ([]string, error) {
	a := p.lookup(agentID)
	if a == nil {
		return nil, unknownAgent(agentID)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Sorted(maps.Keys(a.instances)), nil
}
