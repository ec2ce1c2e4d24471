package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/agentwire/agentwire/failover"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/shadow"
)

// Issue 23's rows: what failover's buffering and a 10% shadow sample cost
// on the normal path, each beside the plain pool in the same run. A row's
// exchange is a whole request (headers, four 1 KiB body chunks and
// request_complete: six events through the pool on the agent's Unix
// socket), so its events/s are requests/s and its allocs/ev allocations
// per request; ×base is the ratio to the plain pool, and the cost is one
// minus it.
const (
	tUDSPlain    = "uds-plain"    // the pool, no interceptor
	tUDSFailover = "uds-failover" // failover.New(WithAgents) on the pool
	tUDSShadow   = "uds-shadow10" // shadow.New sampling 10% to a second agent

	payloadRequest = "req4x1k"
	reqChunks      = 4
	reqChunkSize   = 1 << 10

	shadowRate    = 0.1
	shadowAgentID = "waf-shadow"
)

// reliaTransports are the rows, the plain pool first.
var reliaTransports = []string{tUDSPlain, tUDSFailover, tUDSShadow}

func init() {
	baselineOf[tUDSFailover] = tUDSPlain
	baselineOf[tUDSShadow] = tUDSPlain
}

// requestEvents are one worker's six events, reused request after
// request with a new correlation id each (the shadow samples by it).
type requestEvents struct {
	events []*agentv2.ProxyToAgent // headers, chunks, complete
	id     []byte                  // the correlation id: prefix, then n
	prefix int
	n      uint64
}

func newRequestEvents(worker int) *requestEvents {
	w := &requestEvents{events: []*agentv2.ProxyToAgent{headersEvent(worker)}}
	w.id = fmt.Appendf(nil, "r%06d-", worker)
	w.prefix = len(w.id)
	data := make([]byte, reqChunkSize)
	for i := range data {
		data[i] = 'a' + byte(i%26)
	}
	for i := range reqChunks {
		w.events = append(w.events, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
			ChunkIndex:           uint32(i),
			Data:                 data,
			IsLast:               i == reqChunks-1,
			BytesTransferred:     uint64((i + 1) * reqChunkSize),
			ProxyBufferAvailable: 1 << 20,
			TimestampMs:          1764000000000,
		}}})
	}
	w.events = append(w.events, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{
		StatusCode: 200, DurationMs: 1, BytesReceived: reqChunks * reqChunkSize, BytesSent: 64,
	}}})
	w.next()
	return w
}

// next gives the events the next request's correlation id: one
// allocation, the same in every row.
func (w *requestEvents) next() {
	w.n++
	w.id = strconv.AppendUint(w.id[:w.prefix], w.n, 10)
	id := string(w.id)
	for _, ev := range w.events {
		switch m := ev.GetMessage().(type) {
		case *agentv2.ProxyToAgent_RequestHeaders:
			m.RequestHeaders.Metadata.CorrelationId = id
		case *agentv2.ProxyToAgent_RequestBodyChunk:
			m.RequestBodyChunk.CorrelationId = id
		case *agentv2.ProxyToAgent_RequestComplete:
			m.RequestComplete.CorrelationId = id
		}
	}
}

// roundTrip sends one request's events in order; every answer must allow.
func (w *requestEvents) roundTrip(s sender) roundTrip {
	return func(ctx context.Context) error {
		defer w.next()
		for _, ev := range w.events {
			resp, err := s.Send(ctx, ev)
			if err != nil {
				return err
			}
			if resp.GetAllow() == nil {
				return fmt.Errorf("%T: want allow, got %v", ev.GetMessage(), resp)
			}
		}
		return nil
	}
}

// requestFrames is the bytes of one request's frames on the socket.
func requestFrames() int {
	n := 0
	for _, ev := range newRequestEvents(0).events {
		n += frameSize(ev)
	}
	return n
}

// startShadowAgent starts a second instance of the agent under test on
// its own Unix socket, the shadow of the uds-shadow10 rows.
func (e *env) startShadowAgent(ctx context.Context) error {
	e.shadowAddr = agentAddrs{uds: filepath.Join(e.dir, "shadow.sock")}
	argv := append(slices.Clone(e.agentCmd), "-uds", e.shadowAddr.uds)
	c, err := startChild(ctx, "shadow agent", argv, nil)
	if err != nil {
		return err
	}
	e.shadowAgent = c
	e.closers = append(e.closers, c.close)
	return nil
}

// openReliability opens the pool of one of issue 23's rows, with its
// interceptor, and one worker per in-flight request.
func (e *env) openReliability(ctx context.Context, sc scenario) (_ *target, err error) {
	var (
		fo *failover.Interceptor
		sh *shadow.Interceptor
		p  *pool.Pool
		ws []*requestEvents
	)
	var shadowCPU time.Duration
	if e.shadowAgent != nil {
		shadowCPU = -procCPU(e.shadowAgent.pid())
	}
	closeAll := func() {
		if sh != nil {
			sh.Close() // before the pool: its workers send through it
		}
		if e.shadowAgent != nil {
			shadowCPU += procCPU(e.shadowAgent.pid())
		}
		if p != nil {
			shutdownPool(p)
		}
		e.logReliability(sc, ws, fo, sh, shadowCPU)
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	var extra []pool.Option
	switch sc.Transport {
	case tUDSFailover:
		if fo, err = failover.New(failover.WithAgents(agentID)); err != nil {
			return nil, err
		}
		extra = append(extra, pool.WithInterceptors(fo))
	case tUDSShadow:
		if sh, err = shadow.New(agentID, shadowAgentID, shadow.WithSampleRate(shadowRate)); err != nil {
			return nil, err
		}
		extra = append(extra, pool.WithInterceptors(sh))
	}
	if p, err = e.openPool(ctx, tUDS, sc.Conns, sc.InFlight, e.agentAddr, extra...); err != nil {
		return nil, err
	}
	if sh != nil {
		if err = addShadow(ctx, p, sc.Conns, e.shadowAddr); err != nil {
			return nil, err
		}
	}
	t := &target{pid: e.agent.pid(), close: closeAll}
	for i := range sc.Conns * sc.InFlight {
		w := newRequestEvents(i)
		ws = append(ws, w)
		t.workers = append(t.workers, w.roundTrip(poolSender{p}))
	}
	if sh != nil {
		err = checkShadow(ctx, t.workers[0], sh)
	}
	return t, err
}

// addShadow adds the shadow agent to p and waits for its connections.
func addShadow(ctx context.Context, p *pool.Pool, conns int, a agentAddrs) error {
	if err := p.AddAgent(ctx, shadowAgentID, endpoint(tUDS, a)); err != nil {
		return err
	}
	return waitReady(ctx, p, shadowAgentID, conns)
}

// checkShadow sends requests until one was mirrored and compared, and
// fails if the shadow did not agree.
func checkShadow(ctx context.Context, rt roundTrip, sh *shadow.Interceptor) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// At 10%, 200 requests all go unsampled with odds of 1 in 10^9.
	for range 200 {
		if err := rt(ctx); err != nil {
			return fmt.Errorf("shadow check: %w", err)
		}
	}
	err := waitFor(ctx, "a shadow comparison", func() bool { return sh.Stats()[shadow.Agree] > 0 })
	for r, n := range sh.Stats() {
		if r != shadow.Agree && n > 0 {
			err = errors.Join(err, fmt.Errorf("shadow check: %d %s", n, r))
		}
	}
	return err
}

// logReliability logs what the interceptors did (-v): no failover on a
// healthy agent, and the share of events the shadow compared.
func (e *env) logReliability(sc scenario, ws []*requestEvents, fo *failover.Interceptor, sh *shadow.Interceptor, shadowCPU time.Duration) {
	var reqs uint64 // since the pool opened: warm-up and checks too
	for _, w := range ws {
		reqs += w.n - 1
	}
	evs := uint64(reqChunks+2) * reqs
	if fo != nil {
		e.logf("%s: %d requests, failovers %v", sc.name(), reqs, fo.Stats())
	}
	if sh != nil {
		st := sh.Stats()
		var compared uint64
		for r, n := range st {
			if r != shadow.Dropped {
				compared += n
			}
		}
		e.logf("%s: %d requests, %d of %d events compared with the shadow (%.1f%%), shadow agent CPU %.1f µs per request: %v",
			sc.name(), reqs, compared, evs, 100*float64(compared)/float64(max(evs, 1)),
			durationUS(shadowCPU)/float64(max(reqs, 1)), st)
	}
}
