package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		endpoint string
		interval time.Duration
		want     Target
		bad      bool
	}{
		{endpoint: "unix:///run/a.sock", want: Target{Endpoint: "unix:///run/a.sock"}},
		{endpoint: "grpc://10.0.0.1:50051", want: Target{Endpoint: "grpc://10.0.0.1:50051"}},
		{endpoint: "grpc://waf.svc:50051", interval: time.Second, want: Target{
			Endpoint: "grpc://waf.svc:50051", Discover: true, Scheme: "grpc", Host: "waf.svc", Port: "50051", Interval: time.Second,
		}},
		{endpoint: "dns:///waf.svc:443?scheme=https&interval=2s", want: Target{
			Endpoint: "dns:///waf.svc:443?scheme=https&interval=2s", Discover: true, Scheme: "https", Host: "waf.svc", Port: "443", Interval: 2 * time.Second,
		}},
		{endpoint: "dns://127.0.0.1:5353/waf.svc:50051", want: Target{
			Endpoint: "dns://127.0.0.1:5353/waf.svc:50051", Discover: true, Scheme: "grpc", Host: "waf.svc", Port: "50051",
			Interval: DefaultInterval, Server: "127.0.0.1:5353",
		}},
		{endpoint: "unix:///a.sock", interval: time.Second, bad: true},
		{endpoint: "grpc://waf.svc", interval: time.Second, bad: true},
		{endpoint: "dns:///waf.svc", bad: true},
		{endpoint: "dns:///waf.svc:1?scheme=unix", bad: true},
		{endpoint: "dns:///waf.svc:1?interval=-1s", bad: true},
		{endpoint: "/run/a.sock", bad: true},
		{endpoint: "tcp://x:1", bad: true},
	} {
		got, err := Parse(tc.endpoint, tc.interval)
		if tc.bad {
			assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err), tc.endpoint)
			continue
		}
		require.NoError(t, err, tc.endpoint)
		assert.Equal(t, tc.want, got, tc.endpoint)
	}
}

// fakeLookup answers from a table by network; a missing network is
// "not found", and err fails AAAA queries.
type fakeLookup struct {
	addrs map[string][]string
	err   error
}

func (f *fakeLookup) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	if f.err != nil && network == "ip6" {
		return nil, f.err
	}
	ips, ok := f.addrs[network]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, ip := range ips {
		out = append(out, netip.MustParseAddr(ip))
	}
	return out, nil
}

func TestResolve(t *testing.T) {
	t.Parallel()
	target := Target{Discover: true, Scheme: "grpc", Host: "waf.svc", Port: "50051", Path: "/x"}
	for _, tc := range []struct {
		name  string
		addrs map[string][]string
		err   error
		want  []string
		code  agentwire.Code
	}{
		{name: "both families, sorted, deduplicated",
			addrs: map[string][]string{"ip4": {"10.0.0.2", "10.0.0.1", "10.0.0.2"}, "ip6": {"::1"}},
			want:  []string{"grpc://10.0.0.1:50051/x", "grpc://10.0.0.2:50051/x", "grpc://[::1]:50051/x"}},
		{name: "a v4-mapped address is written as v4",
			addrs: map[string][]string{"ip4": {"::ffff:10.0.0.1"}}, want: []string{"grpc://10.0.0.1:50051/x"}},
		{name: "no records at all", addrs: map[string][]string{}, want: []string{}},
		{name: "one family failing is a failure, not an empty name",
			addrs: map[string][]string{"ip4": {"10.0.0.1"}}, err: errors.New("timeout"), code: agentwire.CodeUnavailable},
	} {
		got, err := Resolve(context.Background(), &fakeLookup{tc.addrs, tc.err}, target)
		if tc.code != 0 {
			assert.Equal(t, tc.code, agentwire.CodeOf(err), tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, got, tc.name)
	}
}

// scriptLookup answers the n-th A query with script[n] (the last one
// forever after): nil fails, empty finds nothing; AAAA queries find
// nothing.
type scriptLookup struct {
	mu     sync.Mutex
	script [][]string // nil: the query fails
	n      int
}

func (l *scriptLookup) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	if network == "ip6" {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	l.mu.Lock()
	ips := l.script[min(l.n, len(l.script)-1)]
	l.n++
	l.mu.Unlock()
	switch {
	case ips == nil:
		return nil, errors.New("timeout")
	case len(ips) == 0:
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{netip.MustParseAddr(ips[0])}, nil
}

// TestWatch: a failed lookup changes nothing, and losing every endpoint
// takes two empty answers in a row.
func TestWatch(t *testing.T) {
	t.Parallel()
	l := &scriptLookup{script: [][]string{{"10.0.0.1"}, nil, {}, {"10.0.0.2"}, {}, {}}}
	target := Target{Discover: true, Scheme: "grpc", Host: "waf.svc", Port: "1", Interval: time.Millisecond}
	updates := make(chan []string, 100)
	failures := make(chan error, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, l, target, func(eps []string) { updates <- eps }, func(err error) { failures <- err })
	}()
	defer func() {
		cancel()
		<-done
	}()
	assert.Equal(t, []string{"grpc://10.0.0.1:1"}, <-updates)
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(<-failures))
	assert.Equal(t, []string{"grpc://10.0.0.2:1"}, <-updates, "one empty answer is not reported")
	assert.Equal(t, []string{}, <-updates, "two in a row are")
}
