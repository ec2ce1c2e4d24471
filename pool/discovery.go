package pool

import (
	"context"
	"errors"
	"net"
	"slices"
	"time"

	"github.com/agentwire/agentwire"
)

// resolve looks up t's host and returns one endpoint per address, sorted.
// A name that does not exist resolves to no instances.
func (a *agent) resolve(ctx context.Context, t target) ([]string, error) {
	r := a.p.cfg.resolver
	if t.server != "" {
		r = serverResolver(t.server)
	}
	addrs, err := r.LookupHost(ctx, t.host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, nil
		}
		return nil, agentwire.Errorf(agentwire.CodeUnavailable, "agent %q: resolving %q: %w", a.id, t.host, err)
	}
	eps := make([]string, 0, len(addrs))
	for _, addr := range addrs {
		eps = append(eps, t.scheme+"://"+net.JoinHostPort(addr, t.port)+t.path)
	}
	slices.Sort(eps)
	return slices.Compact(eps), nil
}

// serverResolver resolves through one DNS server, for dns://server/name
// endpoints.
func serverResolver(server string) *net.Resolver {
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "53")
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// discover re-resolves the agent's name every interval and updates its
// instances. A failed lookup keeps the current instances.
func (a *agent) discover(t target) {
	defer a.wg.Done()
	tk := time.NewTicker(t.interval)
	defer tk.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-tk.C:
		}
		ctx, cancel := context.WithTimeout(a.ctx, t.interval)
		eps, err := a.resolve(ctx, t)
		cancel()
		if err != nil {
			if a.ctx.Err() == nil {
				a.p.cfg.logger.Warn("pool: DNS discovery failed", "agent", a.id, "error", err)
			}
			continue
		}
		a.setInstances(eps)
	}
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
	out := make([]string, 0, len(a.instances))
	for ep := range a.instances {
		out = append(out, ep)
	}
	slices.Sort(out)
	return out, nil
}
