package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// MemoryResult is the proxy-side memory of one connection or one request.
type MemoryResult struct {
	// What: "idle connection" or "in-flight request".
	What      string `json:"what"`
	Transport string `json:"transport"`
	// N is how many were open at once; the figures are per one.
	N int `json:"n"`
	// HeapBytes is live heap after a GC, StackBytes goroutine stacks.
	HeapBytes  float64 `json:"heap_bytes"`
	StackBytes float64 `json:"stack_bytes"`
	Note       string  `json:"note,omitempty"`
}

// TotalBytes is heap plus stacks.
func (m MemoryResult) TotalBytes() float64 { return m.HeapBytes + m.StackBytes }

// heapAndStacks returns live heap and stack bytes after a full GC.
func heapAndStacks() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse
}

func perUnit(before, after uint64, n int) float64 {
	return (float64(after) - float64(before)) / float64(n)
}

func (e *env) measureMemory(ctx context.Context) ([]MemoryResult, error) {
	var out []MemoryResult
	for _, tr := range []string{tUDS, tUDS + directSuffix, tGRPC} {
		m, err := e.inflightMemory(ctx, tr, e.o.inflight)
		if err != nil {
			return nil, fmt.Errorf("in-flight %s: %w", tr, err)
		}
		out = append(out, m)
	}
	for _, tr := range []string{tUDS, tUDS + directSuffix, tGRPC, tConnect, tRaw, tBareGRPC, tBareConnect} {
		m, err := e.idleMemory(ctx, tr, e.o.idleConns)
		if err != nil {
			return nil, fmt.Errorf("idle %s: %w", tr, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// idleMemory opens n connections that carry nothing and measures what they
// hold, after the handshake and the agent's first health report.
func (e *env) idleMemory(ctx context.Context, tr string, n int) (MemoryResult, error) {
	res := MemoryResult{What: "idle connection", Transport: tr, N: n}
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	h0, s0 := heapAndStacks()
	agentTr, direct := scenario{Transport: tr}.agentTransport()
	switch {
	case tr == tRaw || tr == tBareGRPC || tr == tBareConnect:
		res.Note = "baseline"
		for range n {
			var c baselineConn
			var err error
			switch tr {
			case tRaw:
				c, err = dialRaw(ctx, e.rawPath, 1)
			case tBareGRPC:
				c, err = dialBareGRPC(ctx, e.bareGRPCAddr, 1)
			default:
				c, err = dialBareConnect(ctx, e.bareConnectAddr, 1)
			}
			if err != nil {
				return res, err
			}
			closers = append(closers, c.close)
		}
	case direct:
		res.Note = "transport.Conn, after handshake and first health report"
		for range n {
			c, err := dialAgent(ctx, agentTr, e.agentAddr)
			if err != nil {
				return res, err
			}
			closers = append(closers, func() { _ = c.Close(context.Background()) })
		}
	default:
		res.Note = "one pool, n connections to the agent"
		p, err := e.openPool(ctx, agentTr, n, 1, e.agentAddr)
		if err != nil {
			return res, err
		}
		closers = append(closers, func() { shutdownPool(p) })
	}
	sleepCtx(ctx, e.settle())
	h1, s1 := heapAndStacks()
	res.HeapBytes, res.StackBytes = perUnit(h0, h1, n), perUnit(s0, s1, n)
	return res, nil
}

// inflightMemory parks n requests on one connection to the slow agent and
// measures the proxy's memory per request: the pool's and the transport's
// state (routing, call, tables, timer), not the event, which the caller
// built beforehand. The goroutine blocked in each Send is counted apart,
// as stack.
func (e *env) inflightMemory(ctx context.Context, tr string, n int) (MemoryResult, error) {
	res := MemoryResult{What: "in-flight request", Transport: tr, N: n,
		Note: "heap excludes the event; stack is the caller's goroutine blocked in Send"}
	agentTr, direct := scenario{Transport: tr}.agentTransport()
	var (
		s         sender
		inflight  func() int
		cancelAll func()
	)
	if direct {
		c, err := dialAgent(ctx, agentTr, e.slowAddr)
		if err != nil {
			return res, err
		}
		defer func() { _ = c.Close(context.Background()) }()
		s = c
		inflight = func() int { return c.Status().InFlight }
		cancelAll = func() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_ = c.Cancel(cctx, &agentv2.CancelRequest{Reason: agentv2.CancelReason_CANCEL_REASON_MANUAL})
		}
	} else {
		p, err := e.openPool(ctx, agentTr, 1, n, e.slowAddr)
		if err != nil {
			return res, err
		}
		defer shutdownPool(p)
		s = poolSender{p}
		inflight = func() int {
			st, err := p.AgentStats(agentID)
			if err != nil || len(st.Conns) == 0 {
				return 0
			}
			return st.Conns[0].Transport.InFlight
		}
		cancelAll = func() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, _ = p.CancelAll(cctx, agentID, &agentv2.CancelRequest{Reason: agentv2.CancelReason_CANCEL_REASON_MANUAL})
		}
	}
	events := make([]*agentv2.ProxyToAgent, n)
	for i := range events {
		events[i] = headersEvent(i)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, ev := range events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _ = s.Send(sctx, ev)
			// The caller owns the event: without this, the GC frees it
			// once Send has encoded it, and the heap seems to shrink.
			runtime.KeepAlive(ev)
		}()
	}
	// The goroutines exist, parked, before the first reading, and what
	// earlier measurements freed is gone: only what Send adds is measured.
	sleepCtx(ctx, e.settle())
	h0, s0 := heapAndStacks()
	close(start)
	err := waitFor(ctx, fmt.Sprintf("%d requests in flight", n), func() bool { return inflight() >= n })
	if err != nil {
		return res, err
	}
	sleepCtx(ctx, e.settle()/2) // let the writer drain
	h1, s1 := heapAndStacks()
	res.HeapBytes, res.StackBytes = perUnit(h0, h1, n), perUnit(s0, s1, n)
	e.logf("in-flight %s: heap %d -> %d, stacks %d -> %d", tr, h0, h1, s0, s1)
	cancelAll()
	cancel()
	wg.Wait()
	return res, nil
}

// settle is how long memory measurements let background work (health
// reports, writers, closing connections) finish before reading the heap.
func (e *env) settle() time.Duration {
	if e.o.quick {
		return 50 * time.Millisecond
	}
	return 200 * time.Millisecond
}
