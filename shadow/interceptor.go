package shadow

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// Interceptor mirrors sampled requests from a primary agent to a shadow
// agent and compares their answers. It is safe for concurrent use; Close
// stops its workers.
type Interceptor struct {
	cfg   config
	pair  atomic.Pointer[[2]string] // primary, shadow
	seed  maphash.Seed
	salt  uint64
	limit uint64 // a request is sampled when its hash is below limit

	next    atomic.Pointer[pool.SendFunc] // the pipeline, once WrapSend ran
	queues  []chan job
	ctx     context.Context // ends with Close: stops the shadow calls
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  atomic.Bool
	closeMu sync.RWMutex // held for reading while enqueueing, for writing by Close

	counts  map[Result]*atomic.Uint64
	log     disagreementLog
	metrics *metrics
}

var _ pool.Interceptor = (*Interceptor)(nil)

// job is one event answered by the primary, to send to the shadow.
type job struct {
	pair       [2]string
	call       pool.Call
	primary    *agentv2.AgentResponse
	primaryErr error
}

// New returns an Interceptor mirroring agent primary to agent shadowID;
// give it to pool.WithInterceptors.
func New(primary, shadowID string, opts ...Option) (*Interceptor, error) {
	cfg := config{rate: 1, workers: 64, queue: 1024, timeout: 5 * time.Second, logSize: 256, seed: rand.Uint64(), now: time.Now}
	for _, o := range opts {
		o.apply(&cfg)
	}
	switch {
	case primary == "" || shadowID == "" || primary == shadowID:
		return nil, errors.New("shadow: want two different agent ids")
	case cfg.rate < 0 || cfg.rate > 1 || math.IsNaN(cfg.rate):
		return nil, errors.New("shadow: the sample rate must be between 0 and 1")
	case cfg.workers < 1 || cfg.queue < 1 || cfg.logSize < 1 || cfg.timeout <= 0:
		return nil, errors.New("shadow: workers, queue, log size and timeout must be positive")
	}
	ic := &Interceptor{cfg: cfg, seed: maphash.MakeSeed(), salt: cfg.seed, counts: map[Result]*atomic.Uint64{}}
	ic.limit = uint64(cfg.rate * float64(math.MaxUint64))
	if cfg.rate == 1 {
		ic.limit = math.MaxUint64
	}
	ic.pair.Store(&[2]string{primary, shadowID})
	for _, r := range results {
		ic.counts[r] = &atomic.Uint64{}
	}
	ic.log.init(cfg.logSize)
	m, err := newMetrics(cfg.meterProvider)
	if err != nil {
		return nil, err
	}
	ic.metrics = m
	ic.ctx, ic.cancel = context.WithCancel(context.Background())
	ic.queues = make([]chan job, cfg.workers)
	for i := range ic.queues {
		q := make(chan job, cfg.queue)
		ic.queues[i] = q
		ic.wg.Add(1)
		go ic.work(q)
	}
	return ic, nil
}

// WrapSend implements pool.Interceptor.
func (ic *Interceptor) WrapSend(next pool.SendFunc) pool.SendFunc {
	ic.next.Store(&next)
	return func(ctx context.Context, c *pool.Call) (*agentv2.AgentResponse, error) {
		resp, err := next(ctx, c)
		pair := *ic.pair.Load()
		if c.AgentID == pair[0] && ic.sampled(c.CorrelationID) {
			ic.mirror(pair, c, resp, err)
		}
		return resp, err
	}
}

// sampled decides by correlation id, so a request is mirrored whole.
func (ic *Interceptor) sampled(correlationID string) bool {
	if ic.limit == math.MaxUint64 {
		return true
	}
	return ic.hash(correlationID) < ic.limit
}

func (ic *Interceptor) hash(correlationID string) uint64 {
	var h maphash.Hash
	h.SetSeed(ic.seed)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ic.salt)
	h.Write(b[:])
	h.WriteString(correlationID)
	return h.Sum64()
}

// mirror queues the event for the shadow, on the worker of its request;
// a full queue drops it.
func (ic *Interceptor) mirror(pair [2]string, c *pool.Call, resp *agentv2.AgentResponse, err error) {
	j := job{pair: pair, call: *c, primaryErr: err}
	j.call.AgentID = pair[1]
	j.call.Event = c.Event.CloneVT()
	if resp != nil {
		j.primary = resp.CloneVT()
	}
	ic.closeMu.RLock()
	defer ic.closeMu.RUnlock()
	if ic.closed.Load() {
		return
	}
	select {
	case ic.queues[ic.hash(c.CorrelationID)%uint64(len(ic.queues))] <- j:
	default:
		ic.count(pair, Dropped)
	}
}

// work sends queued events to the shadow and compares, until Close.
func (ic *Interceptor) work(q chan job) {
	defer ic.wg.Done()
	for j := range q {
		next := ic.next.Load()
		if next == nil || ic.ctx.Err() != nil {
			continue // not wired to a pool, or closing: drain
		}
		ctx, cancel := context.WithTimeout(ic.ctx, ic.cfg.timeout)
		resp, err := (*next)(ctx, &j.call)
		cancel()
		if err != nil && ic.ctx.Err() != nil {
			continue // abandoned by Close: not the shadow's error
		}
		r := compare(j.primary, resp, j.primaryErr, err)
		ic.count(j.pair, r)
		if r != Agree && r != PrimaryError {
			ic.log.add(Disagreement{
				Time: ic.cfg.now(), Primary: j.pair[0], Shadow: j.pair[1], Result: r,
				CorrelationID: j.call.CorrelationID, Event: j.call.Type.String(),
				PrimaryDecision: summary(j.primary, j.primaryErr), ShadowDecision: summary(resp, err),
				PrimaryTags: j.primary.GetAudit().GetTags(), ShadowTags: resp.GetAudit().GetTags(),
			})
		}
	}
}

func (ic *Interceptor) count(pair [2]string, r Result) {
	ic.counts[r].Add(1)
	ic.metrics.add(pair, r)
}

// Promote swaps the primary and the shadow: from now on the former shadow
// answers the callers and the former primary is compared with it.
func (ic *Interceptor) Promote() {
	for {
		old := ic.pair.Load()
		if ic.pair.CompareAndSwap(old, &[2]string{old[1], old[0]}) {
			return
		}
	}
}

// Agents returns the current primary and shadow.
func (ic *Interceptor) Agents() (primary, shadowID string) {
	p := ic.pair.Load()
	return p[0], p[1]
}

// Stats returns how many comparisons ended in each result.
func (ic *Interceptor) Stats() map[Result]uint64 {
	out := make(map[Result]uint64, len(ic.counts))
	for r, c := range ic.counts {
		out[r] = c.Load()
	}
	return out
}

// Close stops mirroring, abandons the shadow calls in flight (neither
// counted nor logged) and waits for the workers. Close the pool after it.
func (ic *Interceptor) Close() {
	ic.closeMu.Lock()
	if ic.closed.Swap(true) {
		ic.closeMu.Unlock()
		return
	}
	for _, q := range ic.queues {
		close(q)
	}
	ic.closeMu.Unlock()
	ic.cancel()
	ic.wg.Wait()
	ic.metrics.close()
}
