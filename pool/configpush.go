package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// AllAgents, as the agent id of [Pool.PushConfig], pushes to every agent
// that declared the config_push feature.
const AllAgents = ""

// ConfigAck is the fate of a config push to one agent instance.
type ConfigAck struct {
	AgentID string
	// Instance is the endpoint (or, for a reverse connection, the
	// connection id) the push went to.
	Instance string
	// ConnID is the connection of the last attempt.
	ConnID string
	// Accepted is true when the agent acknowledged the configuration.
	Accepted bool
	// Err is why it was not accepted: the agent's own rejection
	// (agentwire.IsWireError), the caller's context, or DeadlineExceeded
	// when the push expired while retrying.
	Err error
	// Attempts counts the configure events tried.
	Attempts int
}

// ConfigStatus is the last config push to an agent.
type ConfigStatus struct {
	Version   string
	Instances int
	Accepted  int
	At        time.Time
}

// PushConfig sends cfg as a configure event to one connection of every
// instance of agent agentID (or of every agent declaring config_push, for
// [AllAgents]) and waits for the acknowledgements: the agent's response to
// the event. An instance that cannot be reached, or whose connection fails,
// is retried with backoff until the push expires ([WithConfigPushExpiry])
// or ctx ends; an agent's rejection is final. The error joins the failures
// of instances that did not accept; the acks say which.
//
// The pool keeps the last configuration pushed to each agent, unless every
// instance rejected it, and replays it to every connection that joins
// later (a redial after the agent restarted, a new instance from DNS, a
// reverse connection): such a connection is [ConnConfiguring] and takes no
// request until the agent has answered.
func (p *Pool) PushConfig(ctx context.Context, agentID string, cfg *agentv2.ConfigureEvent) ([]ConfigAck, error) {
	if cfg == nil {
		return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "pool: nil configure event")
	}
	var agents []*agent
	if agentID == AllAgents {
		for _, a := range p.agentList() {
			if a.configPush() == yes {
				agents = append(agents, a)
			}
		}
	} else {
		a := p.lookup(agentID)
		if a == nil {
			return nil, unknownAgent(agentID)
		}
		if a.configPush() == no {
			return nil, agentwire.Errorf(agentwire.CodeUnimplemented, "pool: agent %q does not accept config push", agentID)
		}
		agents = []*agent{a}
	}
	acks := make([][]ConfigAck, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Go(func() { acks[i] = a.pushConfig(ctx, cfg) })
	}
	wg.Wait()
	all := slices.Concat(acks...)
	var errs []error
	var code agentwire.Code
	for _, ack := range all {
		if !ack.Accepted {
			if code == 0 {
				code = agentwire.CodeOf(ack.Err)
			}
			errs = append(errs, fmt.Errorf("agent %q instance %s: %w", ack.AgentID, ack.Instance, ack.Err))
		}
	}
	if len(errs) > 0 {
		return all, agentwire.NewError(code, errors.Join(errs...))
	}
	return all, nil
}

// pushConfig pushes cfg to every instance of a at once and records the
// push.
func (a *agent) pushConfig(ctx context.Context, cfg *agentv2.ConfigureEvent) []ConfigAck {
	// Connections that join from now on get cfg before they take requests
	// (see agent.replay); restored below if every instance rejects it.
	stored := cfg.CloneVT()
	prev := a.config.Swap(stored)
	keys := a.pushTargets()
	acks := make([]ConfigAck, len(keys))
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Go(func() { acks[i] = a.push(ctx, key, cfg) })
	}
	wg.Wait()
	st := &ConfigStatus{Version: cfg.GetConfigVersion(), Instances: len(acks), At: a.p.cfg.now()}
	rejected := 0
	for _, ack := range acks {
		if ack.Accepted {
			st.Accepted++
		} else if rejection(ack.Err) {
			rejected++
		}
	}
	if rejected > 0 && rejected == len(acks) {
		// The agent refuses this configuration: do not replay it.
		a.config.CompareAndSwap(stored, prev)
	}
	a.configState.Store(st)
	return acks
}

type tristate int

const (
	unknown tristate = iota
	yes
	no
)

// configPush says whether the agent's connections declared config_push.
func (a *agent) configPush() tristate {
	conns := a.connList()
	if len(conns) == 0 {
		return unknown
	}
	for _, sc := range conns {
		if sc.conn.Capabilities().GetFeatures().GetConfigPush() {
			return yes
		}
	}
	return no
}

// pushTargets lists the agent's instances: its endpoints, and each reverse
// connection on its own.
func (a *agent) pushTargets() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var keys []string
	for ep := range a.instances {
		keys = append(keys, ep)
	}
	for _, sc := range a.conns {
		if sc.reverse {
			keys = append(keys, sc.id)
		}
	}
	slices.Sort(keys)
	return keys
}

// connFor returns a connection of instance key to push to: a ready one if
// any, else a paused one (flow control decides), else nil.
func (a *agent) connFor(key string) *SubConn {
	a.mu.Lock()
	defer a.mu.Unlock()
	var paused *SubConn
	for _, sc := range a.conns {
		if (sc.reverse && sc.id != key) || (!sc.reverse && sc.endpoint != key) {
			continue
		}
		switch st := sc.State(); {
		case st.pickable():
			return sc
		case st == ConnPaused && paused == nil:
			paused = sc
		}
	}
	return paused
}

// push delivers cfg to one instance through the request pipeline, retrying
// transient failures until the push expires.
func (a *agent) push(ctx context.Context, key string, cfg *agentv2.ConfigureEvent) ConfigAck {
	pctx, cancel := context.WithTimeout(ctx, a.p.cfg.configPushTTL)
	defer cancel()
	bo := a.p.newBackoff()
	ack := ConfigAck{AgentID: a.id, Instance: key}
	var last error
	for {
		ack.Attempts++
		if sc := a.connFor(key); sc == nil {
			last = agentwire.Errorf(agentwire.CodeUnavailable, "%w: instance %s", ErrNoConnAvailable, key)
		} else {
			ack.ConnID = sc.id
			ev := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Configure{Configure: cfg.CloneVT()}}
			_, err := a.send(pctx, route{conn: sc}, ev)
			if err == nil {
				ack.Accepted = true
				return ack
			}
			if rejection(err) {
				ack.Err = err
				return ack
			}
			last = err
		}
		if ctx.Err() != nil {
			ack.Err = agentwire.NewError(agentwire.CodeOf(agentwire.WrapContextError(ctx.Err())),
				fmt.Errorf("config push abandoned after %d attempts: %w", ack.Attempts, last))
			return ack
		}
		if !sleep(pctx, bo.next()) {
			ack.Err = agentwire.Errorf(agentwire.CodeDeadlineExceeded, "config push expired after %d attempts: %w", ack.Attempts, last)
			return ack
		}
	}
}

// replay is the config component's subscription to new connections: a
// connection that joins configuring gets the agent's configuration before
// it takes requests. A replay that fails closes the connection, which is
// then redialled or, if adopted, removed.
func (a *agent) replay(sc *SubConn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.wg.Go(func() {
		if err := a.configure(a.ctx, sc); err != nil {
			if a.ctx.Err() == nil {
				a.p.cfg.logger.Warn("pool: configuration replay failed; closing the connection",
					"agent", a.id, "conn", sc.id, "error", err)
			}
			closeConn(sc.conn)
		}
	})
}

// configure replays the agent's configuration to sc, installed with
// configuring set, then lets it take requests. A newer push during the
// replay is replayed too, so the connection never ends up behind it. The
// agent rejecting the configuration is logged and the connection serves
// anyway (it keeps the configuration it has); any other failure is
// returned, and the caller closes the connection.
func (a *agent) configure(ctx context.Context, sc *SubConn) error {
	for {
		cfg := a.config.Load()
		if cfg == nil || !sc.conn.Capabilities().GetFeatures().GetConfigPush() {
			break
		}
		cctx, cancel := context.WithTimeout(ctx, a.p.cfg.configPushTTL)
		ev := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Configure{Configure: cfg.CloneVT()}}
		_, err := a.send(cctx, route{conn: sc}, ev)
		cancel()
		if rejection(err) {
			a.p.cfg.logger.Warn("pool: agent rejected its configuration on a new connection",
				"agent", a.id, "conn", sc.id, "version", cfg.GetConfigVersion(), "error", err)
		} else if err != nil {
			return fmt.Errorf("replaying configuration %q: %w", cfg.GetConfigVersion(), err)
		}
		if a.config.Load() == cfg {
			break
		}
	}
	if sc.setFlag(flagConfiguring, false) {
		a.rebuild()
	}
	return nil
}

// rejection reports whether err is the agent refusing a configuration, as
// opposed to failing to take it now.
func rejection(err error) bool {
	return err != nil && agentwire.IsWireError(err) && !retryable(err)
}

// retryable reports whether an agent's error is about load, not about the
// configuration.
func retryable(err error) bool {
	switch agentwire.CodeOf(err) {
	case agentwire.CodeResourceExhausted, agentwire.CodeUnavailable:
		return true
	}
	return false
}
