package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Drain stops the pool taking new requests (they fail with Unavailable,
// [ErrDraining]), sends every connection a drain notice, and waits until no
// event is in flight and no request is open, or ctx ends. Events of
// requests already open still go through. Drain may be called more than
// once; [Pool.Shutdown] finishes the job.
func (p *Pool) Drain(ctx context.Context) error {
	p.mu.Lock()
	if p.state.Load() == poolOpen {
		p.state.Store(poolDraining)
	}
	p.mu.Unlock()
	agents := p.agentList()
	for _, a := range agents {
		a.draining.Store(true)
	}
	msg := drainNotice(ctx, p.cfg.now(), agentv2.DrainRequest_REASON_MANUAL)
	for _, a := range agents {
		a.startDrain(ctx, msg)
	}
	for _, a := range agents {
		if err := a.waitIdle(ctx); err != nil {
			return agentwire.NewError(agentwire.CodeOf(agentwire.WrapContextError(err)),
				fmt.Errorf("pool: drain: agent %q still busy: %w", a.id, err))
		}
	}
	return nil
}

// drain is Drain for one agent.
func (a *agent) drain(ctx context.Context, reason agentv2.DrainRequest_Reason) error {
	a.startDrain(ctx, drainNotice(ctx, a.p.cfg.now(), reason))
	return a.waitIdle(ctx)
}

func drainNotice(ctx context.Context, now time.Time, reason agentv2.DrainRequest_Reason) *agentv2.ProxyToAgent {
	var ms uint64
	if dl, ok := ctx.Deadline(); ok && dl.After(now) {
		ms = uint64(dl.Sub(now) / time.Millisecond)
	}
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Drain{Drain: &agentv2.DrainRequest{
		DurationMs: ms, Reason: reason, TimestampMs: uint64(now.UnixMilli()),
	}}}
}

// Shutdown drains the pool (see [Pool.Drain]) up to ctx's deadline, sends
// every connection a shutdown notice, closes all connections and stops
// every goroutine the pool started; they have all exited when it returns.
// It returns the drain's error, if any: the pool is closed either way.
// Shutdown is idempotent; later calls wait for the first and return its
// result.
func (p *Pool) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() {
		defer close(p.shutdownDone)
		err := p.Drain(ctx)
		// Notices go out even when the drain ran out of time.
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		grace := uint64(0)
		if dl, ok := ctx.Deadline(); ok {
			grace = uint64(max(time.Until(dl), 0) / time.Millisecond)
		}
		now := p.cfg.now()
		var wg sync.WaitGroup
		for _, a := range p.agentList() {
			for _, sc := range a.connList() {
				wg.Go(func() {
					msg := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Shutdown{Shutdown: &agentv2.ShutdownRequest{
						Reason: agentv2.ShutdownRequest_REASON_GRACEFUL, GracePeriodMs: grace, TimestampMs: uint64(now.UnixMilli()),
					}}}
					if sc.conn.Notify(nctx, msg) == nil {
						// Notify only queues; the pong proves the notice was
						// written before the connection closes.
						_, _ = sc.conn.Ping(nctx)
					}
				})
			}
		}
		wg.Wait()
		cancel()
		p.mu.Lock()
		p.state.Store(poolClosed)
		p.mu.Unlock()
		p.stop()
		p.wg.Wait()
		for _, a := range p.agentList() {
			a.close()
		}
		p.shutdownErr = err
	})
	<-p.shutdownDone
	return p.shutdownErr
}

// Close shuts the pool down without waiting for in-flight events.
func (p *Pool) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := p.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
