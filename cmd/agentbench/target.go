package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/agentwire/agentwire/cache"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
)

// Transports of a scenario: agentwire's and their baselines.
const (
	tUDS         = "uds"
	tReverse     = "reverse"
	tGRPC        = "grpc"
	tConnect     = "connect"
	tRaw         = "raw"
	tBareGRPC    = "bare-grpc"
	tBareConnect = "bare-connect"
	tBarePB      = "bare-grpc-pb"
	tBareMsg     = "bare-grpc-msg"
	// tUDSCache is the pool over the Unix socket with the decision cache
	// (package cache) in front of an agent whose decisions are cacheable:
	// after the first event every decision is a hit.
	tUDSCache = "uds-cache"
	// directSuffix marks an agentwire scenario that drives transport.Conn
	// itself, one per connection, without the pool ("uds-conn").
	directSuffix = "-conn"
)

// baselineOf names the baseline each agentwire transport is compared with.
var baselineOf = map[string]string{
	tUDS:                 tRaw,
	tUDS + directSuffix:  tRaw,
	tReverse:             tRaw,
	tGRPC:                tBareMsg,
	tGRPC + directSuffix: tBareMsg,
	tConnect:             tBareConnect,
	tUDSCache:            tUDS,
}

// agentTransport is sc's agentwire transport, and whether the scenario
// drives transport.Conn directly instead of the pool.
func (sc scenario) agentTransport() (tr string, direct bool) {
	tr, direct = strings.CutSuffix(sc.Transport, directSuffix)
	return tr, direct
}

// target is one scenario's open connections and the round trips that
// drive them, one per in-flight slot.
type target struct {
	workers []roundTrip
	pid     int // the server process
	close   func()
}

// sender is what the bench drives on agentwire: a transport.Conn, or the
// pool.
type sender interface {
	Send(ctx context.Context, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error)
}

// openTarget connects sc's connections to its server.
func (e *env) openTarget(ctx context.Context, sc scenario) (*target, error) {
	n := sc.Conns * sc.InFlight
	size := e.requestSize[sc.Payload]
	switch sc.Transport {
	case tRaw:
		return openBaseline(ctx, sc, e.baseline.pid(), func(ctx context.Context) (baselineConn, error) {
			return dialRaw(ctx, e.rawPath, sc.InFlight)
		}, size)
	case tBareGRPC:
		return openBaseline(ctx, sc, e.baseline.pid(), func(ctx context.Context) (baselineConn, error) {
			return dialBareGRPC(ctx, e.bareGRPCAddr, sc.InFlight)
		}, size)
	case tBareConnect:
		return openBaseline(ctx, sc, e.baseline.pid(), func(ctx context.Context) (baselineConn, error) {
			return dialBareConnect(ctx, e.bareConnectAddr, sc.InFlight)
		}, size)
	case tBarePB:
		return openBaseline(ctx, sc, e.baseline.pid(), func(ctx context.Context) (baselineConn, error) {
			return dialBarePB(ctx, e.barePBAddr, sc.Payload, sc.InFlight)
		}, size)
	case tBareMsg:
		return openBaseline(ctx, sc, e.baseline.pid(), func(ctx context.Context) (baselineConn, error) {
			return dialBareMsg(ctx, e.barePBAddr, sc.InFlight)
		}, size)
	case tRedisHit:
		return e.openRedisHit(ctx, sc)
	case tUDSPlain, tUDSFailover, tUDSShadow:
		return e.openReliability(ctx, sc)
	}

	senders, pid, closeFn, err := e.openSenders(ctx, sc)
	if err != nil {
		return nil, err
	}
	t := &target{pid: pid, close: closeFn}
	for i := range n {
		s := senders[i%len(senders)]
		ev := newEvent(sc.Payload, i)
		t.workers = append(t.workers, func(ctx context.Context) error {
			resp, err := s.Send(ctx, ev)
			if err != nil {
				return err
			}
			if resp == nil {
				return errors.New("nil response")
			}
			return nil
		})
	}
	if err := checkDecision(ctx, senders[0], sc.Payload); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// checkDecision makes sure the agent answers as the scenario expects:
// allow, with one header mutation for request headers.
func checkDecision(ctx context.Context, s sender, payload string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := s.Send(ctx, newEvent(payload, 1<<20))
	if err != nil {
		return fmt.Errorf("first event: %w", err)
	}
	if resp.GetAllow() == nil {
		return fmt.Errorf("first event: want allow, got %v", resp)
	}
	if payload == payloadHeaders && len(resp.GetRequestHeaders()) != 1 {
		return fmt.Errorf("first event: want one header mutation, got %v", resp.GetRequestHeaders())
	}
	return nil
}

// openSenders connects conns agentwire connections on transport tr to the
// agent, behind a pool unless the scenario drives transport.Conn directly.
func (e *env) openSenders(ctx context.Context, sc scenario) ([]sender, int, func(), error) {
	tr, direct := sc.agentTransport()
	pid := e.agent.pid()
	if tr == tReverse {
		pid = e.reverseAgent.pid()
	}
	if tr == tUDSCache {
		return e.openCachePool(ctx, sc)
	}
	if !direct {
		p, err := e.openPool(ctx, tr, sc.Conns, sc.InFlight, e.agentAddr)
		if err != nil {
			return nil, 0, nil, err
		}
		return []sender{poolSender{p}}, pid, func() { shutdownPool(p) }, nil
	}
	if tr == tReverse {
		cs, err := e.reverse.take(ctx, sc.Conns)
		if err != nil {
			return nil, 0, nil, err
		}
		out := make([]sender, len(cs))
		for i, c := range cs {
			out[i] = c
		}
		// Reverse connections stay open for the next scenario.
		return out, pid, func() {}, nil
	}
	var opened []transport.Conn
	closeAll := func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, c := range opened {
			_ = c.Close(cctx)
		}
	}
	for range sc.Conns {
		c, err := dialAgent(ctx, tr, e.agentAddr)
		if err != nil {
			closeAll()
			return nil, 0, nil, err
		}
		opened = append(opened, c)
	}
	out := make([]sender, len(opened))
	for i, c := range opened {
		out[i] = c
	}
	return out, pid, closeAll, nil
}

// agentAddrs are where an agent process listens.
type agentAddrs struct {
	uds, grpc, connect string
}

// agentID is the agent's name in the bench's pools.
const agentID = "waf"

// poolSender sends every event to the pool's one agent.
type poolSender struct{ p *pool.Pool }

func (s poolSender) Send(ctx context.Context, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	return s.p.Send(ctx, agentID, ev)
}

// openPool returns a pool with conns connections to the agent on transport
// tr, sized for inflight events per connection, once all of them are ready.
// Reverse connections are taken from the reverse listener and adopted; the
// pool closes them when it shuts down and the agent dials new ones.
func (e *env) openPool(ctx context.Context, tr string, conns, inflight int, a agentAddrs, extra ...pool.Option) (*pool.Pool, error) {
	opts := []pool.Option{
		pool.WithConnections(conns),
		pool.WithMaxReverseConns(conns),
		// Round robin puts about inflight events on each connection; leave
		// room so the bench measures the transport, not the limit.
		pool.WithMaxConcurrency(2*inflight+16, time.Second),
		pool.WithTransportOptions(transport.WithProxyID("agentbench", "0")),
		pool.WithLogger(quietLogger),
	}
	p, err := pool.New(append(opts, extra...)...)
	if err != nil {
		return nil, err
	}
	if tr == tReverse {
		cs, err := e.reverse.take(ctx, conns)
		if err != nil {
			shutdownPool(p)
			return nil, err
		}
		for _, c := range cs {
			e.reverse.forget(c)
			if err := p.AdoptConn(agentID, c); err != nil {
				_ = c.Close(ctx)
				shutdownPool(p)
				return nil, err
			}
		}
	} else if err := p.AddAgent(ctx, agentID, endpoint(tr, a)); err != nil {
		shutdownPool(p)
		return nil, err
	}
	if err = waitReady(ctx, p, agentID, conns); err != nil {
		shutdownPool(p)
		return nil, err
	}
	return p, nil
}

// shutdownPool closes p without draining: the bench's requests never
// send request_complete, so their affinity pins would hold a drain up until
// its deadline.
func shutdownPool(p *pool.Pool) { _ = p.Close() }

// endpoint is the pool endpoint of the agent on transport tr.
func endpoint(tr string, a agentAddrs) string {
	switch tr {
	case tUDS:
		return "unix://" + a.uds
	case tGRPC:
		return "grpc://" + a.grpc
	case tConnect:
		return "http://" + a.connect
	case tUDSJSON, tUDSMsgPack:
		return refEndpoint(tr, a)
	}
	return ""
}

// dialAgent opens one agentwire connection on transport tr.
func dialAgent(ctx context.Context, tr string, a agentAddrs) (transport.Conn, error) {
	opts := []transport.Option{transport.WithProxyID("agentbench", "0")}
	switch tr {
	case tUDS:
		return transport.DialUnix(ctx, a.uds, opts...)
	case tGRPC:
		return transport.DialGRPC(ctx, a.grpc, opts...)
	case tConnect:
		return transport.DialConnect(ctx, "http://"+a.connect, opts...)
	case tUDSJSON, tUDSMsgPack:
		return transport.DialUnix(ctx, a.uds, append(opts, refOption(tr))...)
	}
	return nil, fmt.Errorf("unknown transport %q", tr)
}

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// baselineConn is one baseline client connection.
type baselineConn interface {
	roundTrip(slot, size int) roundTrip
	close()
}

func openBaseline(ctx context.Context, sc scenario, pid int, dial func(context.Context) (baselineConn, error), size int) (*target, error) {
	var conns []baselineConn
	closeAll := func() {
		for _, c := range conns {
			c.close()
		}
	}
	for range sc.Conns {
		c, err := dial(ctx)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: %w", sc.Transport, err)
		}
		conns = append(conns, c)
	}
	t := &target{pid: pid, close: closeAll}
	for i := range sc.Conns * sc.InFlight {
		t.workers = append(t.workers, conns[i%sc.Conns].roundTrip(i/sc.Conns, size))
	}
	return t, nil
}

// openCachePool is a pool with the decision cache in front of the
// cacheable agent.
func (e *env) openCachePool(ctx context.Context, sc scenario) ([]sender, int, func(), error) {
	ic, err := cache.NewInterceptor()
	if err != nil {
		return nil, 0, nil, err
	}
	p, err := e.openPool(ctx, tUDS, sc.Conns, sc.InFlight, e.cacheAddr, pool.WithInterceptors(ic))
	if err != nil {
		ic.Close()
		return nil, 0, nil, err
	}
	return []sender{poolSender{p}}, e.cacheAgent.pid(), func() { shutdownPool(p); ic.Close() }, nil
}

// waitReady waits until agent id has at least conns ready connections.
func waitReady(ctx context.Context, p *pool.Pool, id string, conns int) error {
	return waitFor(ctx, fmt.Sprintf("%d ready connections of %s", conns, id), func() bool {
		st, err := p.AgentStats(id)
		if err != nil {
			return false
		}
		ready := 0
		for _, c := range st.Conns {
			if c.State == pool.ConnReady {
				ready++
			}
		}
		return ready >= conns
	})
}
