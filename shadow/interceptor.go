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
	"github.com/agentwire/agentwire/internal/wire"
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
	queues  []chan *job
	ctx     context.Context // ends with Close: stops the shadow calls
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  atomic.Bool
	closeMu sync.RWMutex // held for reading while enqueueing, for writing by Close

	counts  [len(results)]atomic.Uint64
	log     disagreementLog
	metrics *metrics
}

var _ pool.Interceptor = (*Interceptor)(nil)

// job is one event answered by the primary, to send to the shadow. The
// event travels marshalled: a copy the caller's buffers cannot change, made
// at a fifth of the cost of a clone, which the worker decodes into an event
// it reuses. Jobs are pooled, and queued by pointer.
type job struct {
	pair          [2]string
	session, corr string
	kind          agentv2.EventType
	event         *[]byte // from wire.Buffers
	primary       *agentv2.AgentResponse
	primaryErr    error
}

var jobs = sync.Pool{New: func() any { return new(job) }}

func (j *job) release() {
	if j.event != nil {
		wire.Buffers.Put(j.event)
	}
	*j = job{}
	jobs.Put(j)
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
	ic := &Interceptor{cfg: cfg, seed: maphash.MakeSeed(), salt: cfg.seed}
	ic.limit = uint64(cfg.rate * float64(math.MaxUint64))
	if cfg.rate == 1 {
		ic.limit = math.MaxUint64
	}
	ic.pair.Store(&[2]string{primary, shadowID})
	ic.log.init(cfg.logSize)
	m, err := newMetrics(cfg.meterProvider, [2]string{primary, shadowID})
	if err != nil {
		return nil, err
	}
	ic.metrics = m
	ic.ctx, ic.cancel = context.WithCancel(context.Background())
	ic.queues = make([]chan *job, cfg.workers)
	for i := range ic.queues {
		q := make(chan *job, cfg.queue)
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
		if c.AgentID != pair[0] {
			return resp, err
		}
		// Sampled by correlation id, so a request is mirrored whole.
		if h := ic.hash(c.CorrelationID); h < ic.limit || ic.limit == math.MaxUint64 {
			ic.mirror(pair, h, c, resp, err)
		}
		return resp, err
	}
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

// mirror queues the event for the shadow, on the worker of its request
// (h is its hash); a full queue drops it.
func (ic *Interceptor) mirror(pair [2]string, h uint64, c *pool.Call, resp *agentv2.AgentResponse, err error) {
	ic.closeMu.RLock()
	defer ic.closeMu.RUnlock()
	if ic.closed.Load() {
		return
	}
	q := ic.queues[h%uint64(len(ic.queues))]
	if len(q) == cap(q) {
		ic.count(pair, Dropped) // not worth the copy
		return
	}
	event, merr := wire.Marshal(c.Event, 0)
	if merr != nil {
		ic.count(pair, ShadowError) // the shadow cannot be sent it
		return
	}
	j := jobs.Get().(*job)
	*j = job{pair: pair, session: c.Session, corr: c.CorrelationID, kind: c.Type, event: event, primaryErr: err}
	if resp != nil {
		j.primary = resp.CloneVT()
	}
	select {
	case q <- j:
	default:
		ic.count(pair, Dropped)
		j.release()
	}
}

// work sends queued events to the shadow and compares, until Close.
func (ic *Interceptor) work(q chan *job) {
	defer ic.wg.Done()
	ev := new(agentv2.ProxyToAgent) // each job's event, decoded in place
	var dl deadline
	defer dl.stop()
	for j := range q {
		next := ic.next.Load()
		if next == nil || ic.ctx.Err() != nil {
			j.release()
			continue // not wired to a pool, or closing: drain
		}
		ic.send(dl.get(ic.ctx, ic.cfg.timeout), *next, ev, j)
		j.release()
	}
}

// deadline is a worker's context for its calls, renewed when less than
// the timeout is left: each call gets between one and two timeouts, for
// one timer per timeout rather than one per call.
type deadline struct {
	ctx    context.Context
	cancel context.CancelFunc
	at     time.Time
}

func (d *deadline) get(parent context.Context, timeout time.Duration) context.Context {
	if now := time.Now(); d.at.Sub(now) < timeout {
		d.stop()
		d.at = now.Add(2 * timeout)
		d.ctx, d.cancel = context.WithDeadline(parent, d.at)
	}
	return d.ctx
}

func (d *deadline) stop() {
	if d.cancel != nil {
		d.cancel()
	}
}

// send sends j's event to the shadow, decoded into ev, and compares the
// answers.
func (ic *Interceptor) send(ctx context.Context, next pool.SendFunc, ev *agentv2.ProxyToAgent, j *job) {
	ev.ResetVT()
	// The event's strings and bytes alias j.event until j is released:
	// the pipeline keeps nothing of an event once its Send returns.
	var (
		resp *agentv2.AgentResponse
		err  = ev.UnmarshalVTUnsafe(*j.event)
	)
	if err == nil {
		c := pool.Call{AgentID: j.pair[1], Session: j.session, CorrelationID: j.corr, Type: j.kind, Event: ev}
		resp, err = next(ctx, &c)
		if err != nil && ic.ctx.Err() != nil {
			return // abandoned by Close: not the shadow's error
		}
	}
	r := compare(j.primary, resp, j.primaryErr, err)
	ic.count(j.pair, r)
	if r != Agree && r != PrimaryError {
		ic.log.add(Disagreement{
			Time: ic.cfg.now(), Primary: j.pair[0], Shadow: j.pair[1], Result: r,
			CorrelationID: j.corr, Event: j.kind.String(),
			PrimaryDecision: summary(j.primary, j.primaryErr), ShadowDecision: summary(resp, err),
			PrimaryTags: j.primary.GetAudit().GetTags(), ShadowTags: resp.GetAudit().GetTags(),
		})
	}
}

func (ic *Interceptor) count(pair [2]string, r Result) {
	i := r.index()
	ic.counts[i].Add(1)
	ic.metrics.add(pair, i)
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
	out := make(map[Result]uint64, len(results))
	for i, r := range results {
		out[r] = ic.counts[i].Load()
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
