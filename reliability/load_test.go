package reliability_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// op is one proxied request as a caller of the pool sees it: request
// headers then request-complete (always sent, as a proxy does, so that the
// pool's affinity entry ends), first to the caller's preferred agent and,
// if that fails with Unavailable, to the other one.
type op struct {
	start, end time.Time
	primary    int
	servedBy   int // index of the agent that decided, -1 if none
	failedOver bool
	errs       []error // every failed call, headers or complete
}

// loadConfig shapes a paced load over agents: each worker is one client
// connection of a proxy, sending its requests one after another on a
// schedule (catching up when it fell behind), so a stall shows up as
// latency rather than as an unbounded pile of requests.
type loadConfig struct {
	pool    *pool.Pool
	agents  []string
	workers int
	rate    float64 // requests per second over all workers, two events each
	timeout time.Duration
	// headers builds a request's headers event (default: a plain GET).
	headers func(corr string) *agentv2.ProxyToAgent
	// served counts requests decided by each agent, live.
	served []atomic.Uint64
}

// runLoad sends requests at cfg.rate until ctx ends and returns every one.
func runLoad(ctx context.Context, cfg *loadConfig) []op {
	if cfg.headers == nil {
		cfg.headers = func(corr string) *agentv2.ProxyToAgent { return headersEvent(corr, "/products?id=7") }
	}
	cfg.served = make([]atomic.Uint64, len(cfg.agents))
	interval := time.Duration(float64(cfg.workers) / cfg.rate * float64(time.Second))
	var (
		mu  sync.Mutex
		all []op
		wg  sync.WaitGroup
	)
	t0 := time.Now()
	for w := range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []op
			timer := time.NewTimer(0)
			defer timer.Stop()
			// Stagger the workers over one interval.
			next := t0.Add(time.Duration(w) * interval / time.Duration(cfg.workers))
			for i := 0; ; i++ {
				if d := time.Until(next); d > 0 {
					timer.Reset(d)
					select {
					case <-timer.C:
					case <-ctx.Done():
					}
				}
				if ctx.Err() != nil {
					break
				}
				next = next.Add(interval)
				mine = append(mine, cfg.request(fmt.Sprintf("w%d-%d", w, i), w%len(cfg.agents)))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all
}

// request runs one request, failing over to the next agent when the
// preferred one is unavailable.
func (cfg *loadConfig) request(corr string, primary int) op {
	o := op{start: time.Now(), primary: primary, servedBy: -1}
	for try := range len(cfg.agents) {
		i := (primary + try) % len(cfg.agents)
		err := cfg.exchange(corr, i, &o)
		if err == nil {
			o.servedBy = i
			cfg.served[i].Add(1)
			break
		}
		if agentwire.CodeOf(err) != agentwire.CodeUnavailable {
			break
		}
		o.failedOver = true
	}
	o.end = time.Now()
	return o
}

// exchange sends the headers and the request-complete to agent i and
// returns the headers' error.
func (cfg *loadConfig) exchange(corr string, i int, o *op) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	_, err := cfg.pool.Send(ctx, cfg.agents[i], cfg.headers(corr))
	if err != nil {
		o.errs = append(o.errs, err)
	}
	if _, cerr := cfg.pool.Send(ctx, cfg.agents[i], completeEvent(corr)); cerr != nil {
		o.errs = append(o.errs, cerr)
	}
	return err
}

// readyConns counts agent id's connections that take requests.
func readyConns(p *pool.Pool, id string) int {
	st, err := p.AgentStats(id)
	if err != nil {
		return 0
	}
	n := 0
	for _, c := range st.Conns {
		if c.State == pool.ConnReady {
			n++
		}
	}
	return n
}
