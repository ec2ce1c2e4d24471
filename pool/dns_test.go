package pool

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	sdk "github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/pool/balancer"
)

// dnsServer is an authoritative DNS server on loopback whose A records the
// test changes.
type dnsServer struct {
	addr string
	mu   sync.Mutex
	a    map[string][]string // fqdn -> IPv4 addresses; absent = NXDOMAIN
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	ds := &dnsServer{addr: pc.LocalAddr().String(), a: map[string][]string{}}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(ds.serve), NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return ds
}

func (ds *dnsServer) set(name string, ips ...string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ips == nil {
		delete(ds.a, name)
		return
	}
	ds.a[name] = ips
}

func (ds *dnsServer) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) == 1 {
		q := r.Question[0]
		ds.mu.Lock()
		ips, ok := ds.a[strings.ToLower(q.Name)]
		ds.mu.Unlock()
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
					A:   net.ParseIP(ip),
				})
			}
		}
	}
	_ = w.WriteMsg(m)
}

// resolver asks only ds.
func (ds *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, ds.addr)
	}}
}

// listenPair listens on 127.0.0.1 and 127.0.0.2 with the same port, as two
// instances behind one name do.
func listenPair(t *testing.T) (port string, l1, l2 net.Listener) {
	t.Helper()
	for range 20 {
		a, err := net.Listen("tcp", "127.0.0.2:0")
		require.NoError(t, err)
		_, port, _ = net.SplitHostPort(a.Addr().String())
		b, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err == nil {
			return port, b, a
		}
		_ = a.Close()
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return
}

// serveGRPC serves rec as a gRPC agent on ln until the test ends.
func serveGRPC(t *testing.T, rec *recorder, ln net.Listener) {
	t.Helper()
	srv, err := sdk.NewServer(rec, sdk.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	gs := grpc.NewServer(sdk.GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		gs.Stop()
		<-done
	})
}

func TestDNSDiscoveryAddsAndRemovesInstances(t *testing.T) {
	t.Parallel()
	ds := startDNS(t)
	port, l1, l2 := listenPair(t)
	release := make(chan struct{})
	r1, r2 := newRecorder("one"), newRecorder("two")
	r1.setHook(holdUntil("hold", release))
	serveGRPC(t, r1, l1)
	serveGRPC(t, r2, l2)
	ep1, ep2 := "grpc://127.0.0.1:"+port, "grpc://127.0.0.2:"+port

	ds.set("agents.test.", "127.0.0.1")
	p := newTestPool(t, WithResolver(ds.resolver()), WithConnections(2), WithPolicy(balancer.RoundRobin))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", "dns:///agents.test.:"+port+"?scheme=grpc&interval=10ms"))
	instances := func() []string {
		eps, err := p.Instances("waf")
		require.NoError(t, err)
		return eps
	}
	assert.Equal(t, []string{ep1}, instances())
	require.Eventually(t, func() bool { return countState(stats(t, p, "waf"), ConnReady) == 2 }, 5*time.Second, time.Millisecond)
	for i := range 10 {
		require.NoError(t, sendRequest(ctx, p, "waf", "a"+itoa(i)))
	}
	assert.Equal(t, int64(20), r1.events.Load())
	assert.Zero(t, r2.events.Load())

	// A second record: a second instance.
	ds.set("agents.test.", "127.0.0.1", "127.0.0.2")
	require.Eventually(t, func() bool { return len(instances()) == 2 && countState(stats(t, p, "waf"), ConnReady) == 4 },
		5*time.Second, time.Millisecond)
	assert.Equal(t, []string{ep1, ep2}, instances())
	for i := range 20 {
		require.NoError(t, sendRequest(ctx, p, "waf", "b"+itoa(i)))
	}
	assert.Equal(t, int64(40), r1.events.Load())
	assert.Equal(t, int64(20), r2.events.Load())

	// Requests in flight on the first instance when its record goes...
	held := make(chan error, 4)
	for i := range 4 {
		go func() {
			_, err := p.Send(ctx, "waf", headers("hold"+itoa(i)))
			held <- err
		}()
	}
	require.Eventually(t, func() bool { return r1.active.Load() == 2 }, 5*time.Second, time.Millisecond)
	require.NoError(t, <-held)
	require.NoError(t, <-held)
	ds.set("agents.test.", "127.0.0.2")
	require.Eventually(t, func() bool { return len(instances()) == 1 && len(stats(t, p, "waf").Conns) == 2 },
		5*time.Second, time.Millisecond)
	assert.Equal(t, []string{ep2}, instances())
	for _, c := range stats(t, p, "waf").Conns {
		assert.Equal(t, ep2, c.Endpoint)
	}
	// ...finish on their retired connections; new ones go to the second.
	for i := range 10 {
		require.NoError(t, sendRequest(ctx, p, "waf", "c"+itoa(i)))
	}
	assert.Equal(t, int64(40), r2.events.Load()-2)
	close(release)
	require.NoError(t, <-held)
	require.NoError(t, <-held)
	assert.Equal(t, int64(42), r1.events.Load())

	// The name disappears: no instances, no connections.
	ds.set("agents.test.")
	require.Eventually(t, func() bool { return len(instances()) == 0 && len(stats(t, p, "waf").Conns) == 0 },
		5*time.Second, time.Millisecond)
	_, err := p.Send(ctx, "waf", headers("none"))
	assert.ErrorIs(t, err, ErrNoConnAvailable)
	for i := range 4 {
		_, _ = p.Send(ctx, "waf", complete("hold"+itoa(i)))
	}
}

func TestDNSDiscoveryOption(t *testing.T) {
	t.Parallel()
	ds := startDNS(t)
	port, l1, l2 := listenPair(t)
	_ = l2.Close()
	serveGRPC(t, newRecorder("one"), l1)
	ds.set("waf.test.", "127.0.0.1")
	p := newTestPool(t, WithConnections(1))
	ctx := testCtx(t)
	// The DNS server named in the endpoint, and the option form.
	require.NoError(t, p.AddAgent(ctx, "a", "dns://"+ds.addr+"/waf.test.:"+port))
	p2 := newTestPool(t, WithResolver(ds.resolver()))
	require.NoError(t, p2.AddAgent(ctx, "b", "grpc://waf.test.:"+port, WithDNSDiscovery(time.Hour)))
	eps, err := p2.Instances("b")
	require.NoError(t, err)
	assert.Equal(t, []string{"grpc://127.0.0.1:" + port}, eps)
	eps, err = p.Instances("a")
	require.NoError(t, err)
	assert.Equal(t, []string{"grpc://127.0.0.1:" + port}, eps)
	require.NoError(t, sendRequest(ctx, p, "a", "x"))
}
