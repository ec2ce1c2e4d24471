package pool

import (
	"context"
	"sync"
	"time"
)

// maintain runs the pool's periodic work until the pool shuts down.
func (p *Pool) maintain() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.probeInterval)
	defer t.Stop()
	for {
		select {
		case <-p.bg.Done():
			return
		case <-t.C:
			p.tick(p.bg)
		}
	}
}

// tick expires idle pins and sessions, decays error rates, probes failing
// connections and rebuilds pickers (for the decayed error rates, and the
// state of connections built without the pool's status listener).
func (p *Pool) tick(ctx context.Context) {
	now := p.cfg.nanos()
	for _, a := range p.agentList() {
		a.tick(ctx, now)
	}
}

func (a *agent) tick(ctx context.Context, now int64) {
	if n := a.aff.Sweep(now); n > 0 {
		a.p.cfg.logger.Debug("pool: expired idle requests", "agent", a.id, "count", n)
	}
	a.sticky.Sweep(now)
	conns := a.connList()
	for _, sc := range conns {
		sc.decay()
	}
	a.probe(ctx, conns)
	a.poll()
}

// probe pings the connections taken out after transport failures, all at
// once, and puts back those that answer.
func (a *agent) probe(ctx context.Context, conns []*SubConn) {
	var wg sync.WaitGroup
	for _, sc := range conns {
		if sc.flags.Load()&flagFailing == 0 {
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, a.p.cfg.probeTimeout)
			defer cancel()
			if _, err := sc.conn.Ping(pctx); err != nil {
				a.p.cfg.logger.Debug("pool: probe failed", "agent", a.id, "conn", sc.id, "error", err)
				return
			}
			sc.consecutive.Store(0)
			sc.setFlag(flagFailing, false)
			a.p.cfg.logger.Info("pool: connection back after probe", "agent", a.id, "conn", sc.id)
		})
	}
	wg.Wait()
}
