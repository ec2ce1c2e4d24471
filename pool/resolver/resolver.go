// Package resolver turns an agent's endpoint into the set of endpoints the
// pool keeps connections to, as grpc-go's resolvers feed its balancers: a
// plain endpoint is one instance; a dns:/// endpoint, or a network
// endpoint with a discovery interval, is looked up in DNS every interval,
// one instance per address.
package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentwire/agentwire"
)

// DefaultInterval is how often a dns:/// endpoint without an interval is
// looked up again.
const DefaultInterval = 30 * time.Second

// Lookup looks up the addresses of a host name (network "ip4" or "ip6").
// *net.Resolver implements it.
type Lookup interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Target is a parsed endpoint.
type Target struct {
	// Endpoint is the endpoint as given: what to dial without discovery.
	Endpoint string
	// Discover says the endpoint is looked up in DNS; the fields below
	// are then set.
	Discover bool
	// Scheme, Port and Path build an endpoint for each address of Host.
	Scheme, Host, Port, Path string
	Interval                 time.Duration
	// Server is the DNS server of a dns://server/ endpoint, if any.
	Server string
}

// Parse parses an endpoint; interval > 0 asks for DNS discovery of a
// network endpoint. Errors are InvalidArgument.
func Parse(endpoint string, interval time.Duration) (Target, error) {
	bad := func(format string, args ...any) (Target, error) {
		return Target{}, agentwire.Errorf(agentwire.CodeInvalidArgument, "endpoint %q: "+format, append([]any{endpoint}, args...)...)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return bad("%w", err)
	}
	t := Target{Endpoint: endpoint, Interval: interval}
	switch u.Scheme {
	case "unix":
		if interval > 0 {
			return bad("DNS discovery needs a network endpoint")
		}
		return t, nil
	case "grpc", "grpcs", "http", "https":
		if interval == 0 {
			return t, nil
		}
		t.Scheme, t.Path = u.Scheme, u.Path
		t.Host, t.Port = u.Hostname(), u.Port()
	case "dns":
		t.Server = u.Host
		t.Scheme = u.Query().Get("scheme")
		if t.Scheme == "" {
			t.Scheme = "grpc"
		}
		switch t.Scheme {
		case "grpc", "grpcs", "http", "https":
		default:
			return bad("unknown scheme %q (want grpc, grpcs, http or https)", t.Scheme)
		}
		if s := u.Query().Get("interval"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return bad("bad interval %q", s)
			}
			t.Interval = d
		}
		if t.Interval == 0 {
			t.Interval = DefaultInterval
		}
		if t.Host, t.Port, err = net.SplitHostPort(strings.TrimPrefix(u.Path, "/")); err != nil {
			return bad("want dns:///name:port: %w", err)
		}
	default:
		return bad("unknown scheme %q (want unix, grpc, grpcs, http, https or dns)", u.Scheme)
	}
	if t.Host == "" || t.Port == "" {
		return bad("DNS discovery needs a host name and a port")
	}
	t.Discover = true
	return t, nil
}

// Resolve looks up t's host through l (or t's own server) and returns one
// endpoint per address, sorted. A and AAAA records are asked for
// separately, so that one failing query is not mistaken for a name without
// addresses: the name has none only when both say so. Errors are
// Unavailable.
func Resolve(ctx context.Context, l Lookup, t Target) ([]string, error) {
	if t.Server != "" {
		l = serverLookup(t.Server)
	}
	var (
		addrs []netip.Addr
		errs  [2]error
		wg    sync.WaitGroup
		mu    sync.Mutex
	)
	for i, network := range []string{"ip4", "ip6"} {
		wg.Go(func() {
			got, err := l.LookupNetIP(ctx, network, t.Host)
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
			return nil, agentwire.Errorf(agentwire.CodeUnavailable, "resolving %q: %w", t.Host, err)
		}
	}
	if len(addrs) == 0 && notFound < len(errs) {
		return nil, agentwire.Errorf(agentwire.CodeUnavailable, "resolving %q: no addresses", t.Host)
	}
	eps := make([]string, 0, len(addrs))
	for _, addr := range addrs {
		eps = append(eps, t.Scheme+"://"+net.JoinHostPort(addr.Unmap().String(), t.Port)+t.Path)
	}
	slices.Sort(eps)
	return slices.Compact(eps), nil
}

// serverLookup resolves through one DNS server.
func serverLookup(server string) *net.Resolver {
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "53")
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// minLookupTimeout is the least time one lookup of Watch may take.
const minLookupTimeout = 2 * time.Second

// Watch looks t up every t.Interval until ctx ends and hands each set of
// endpoints to update, and each failure to failed. A failed lookup
// changes nothing; losing every endpoint takes two empty answers in a
// row. It returns when ctx ends.
func Watch(ctx context.Context, l Lookup, t Target, update func([]string), failed func(error)) {
	tk := time.NewTicker(t.Interval)
	defer tk.Stop()
	empty := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		lctx, cancel := context.WithTimeout(ctx, max(t.Interval, minLookupTimeout))
		eps, err := Resolve(lctx, l, t)
		cancel()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				failed(err)
			}
		case len(eps) == 0:
			if empty++; empty >= 2 {
				update(eps)
			}
		default:
			empty = 0
			update(eps)
		}
	}
}
