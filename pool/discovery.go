package pool

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/agentwire/agentwire"
)

// resolve looks up t's host and returns one endpoint per address, sorted.
// A and AAAA records are asked for separately, so that one failing query
// is not mistaken for a name without addresses: the name has none only
// when both say so.
func (a *agent) resolve(ctx context.Context, t target) ([]string, error) {
	r := a.p.cfg.resolver
	if t.server != "" {
		r = serverResolver(t.server)
	}
	var (
		addrs []netip.Addr
		errs  [2]error
		wg    sync.WaitGroup
		mu    sync.Mutex
	)
	for i, network := range []string{"ip4", "ip6"} {
		wg.Go(func() {
			got, err := r.LookupNetIP(ctx, network, t.host)
			mu.Lock()
			defer mu.Unlock()
			addrs = append(addrs, got...)
			errs[i] = err
		})
	}
	wg.Wait()
	notFound := 0
	for _, err := range errs {
		var dnsErr *net.DNSError
		switch {
		case err == nil:
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			notFound++
		default:
			return nil, agentwire.Errorf(agentwire.CodeUnavailable, "agent %q: resolving %q: %w", a.id, t.host, err)
		}
	}
	if len(addrs) == 0 && notFound < len(errs) {
		return nil, agentwire.Errorf(agentwire.CodeUnavailable, "agent %q: resolving %q: no addresses", a.id, t.host)
	}
	eps := make([]string, 0, len(addrs))
	for _, addr := range addrs {
		eps = append(eps, t.scheme+"://"+net.JoinHostPort(addr.Unmap().String(), t.port)+t.path)
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
	empty := 0
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-tk.C:
		}
		ctx, cancel := context.WithTimeout(a.ctx, max(t.interval, lookupTimeout))
		eps, err := a.resolve(ctx, t)
		cancel()
		if err != nil {
			if a.ctx.Err() == nil {
				a.p.cfg.logger.Warn("pool: DNS discovery failed", "agent", a.id, "error", err)
			}
			continue
		}
		// Losing every instance takes two answers in a row.
		if len(eps) == 0 {
			if empty++; empty < 2 {
				continue
			}
		} else {
			empty = 0
		}
		a.setInstances(eps)
	}
}

// lookupTimeout is the least time a DNS lookup of discovery may take.
const lookupTimeout = 2 * time.Second

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
