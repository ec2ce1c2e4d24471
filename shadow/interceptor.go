package shadow

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// Interceptor mirrors sampled requests from a primary agent to a shadow
// agent and compares their answers. It is safe for concurrent use; Close
// stops the mirroring.
type Interceptor struct {
	cfg   config
	pair  atomic.Pointer[[2]string] // primary, shadow
	seed  maphash.Seed
	salt  uint64
	limit uint64 // a request is sampled when its hash is below limit

	pool     atomic.Pointer[pool.Pool] // the pool it wraps (Watch)
	inFlight atomic.Int64              // mirrored events waiting for the shadow
	deadline atomic.Pointer[deadline]  // the context of the shadow calls
	ctx      context.Context           // ends with Close: abandons the shadow calls
	cancel   context.CancelFunc
	calls    sync.WaitGroup // mirrored events whose answer Close waits for
	closed   bool
	closeMu  sync.RWMutex // guards closed, and calls.Add against Close

	counts  [len(results)]atomic.Uint64
	log     disagreementLog
	metrics *metrics
}

var (
	_ pool.Interceptor        = (*Interceptor)(nil)
	_ pool.UntimedInterceptor = (*Interceptor)(nil)
	_ pool.Watcher            = (*Interceptor)(nil)
)

// New returns an Interceptor mirroring agent primary to agent shadowID;
// give it to pool.WithInterceptors.
func New(primary, shadowID string, opts ...Option) (*Interceptor, error) {
	cfg := config{rate: 1, maxInFlight: 1024, timeout: 5 * time.Second, logSize: 256, seed: rand.Uint64(), now: time.Now}
	for _, o := range opts {
		o.apply(&cfg)
	}
	switch {
	case primary == "" || shadowID == "" || primary == shadowID:
		return nil, errors.New("shadow: want two different agent ids")
	case cfg.rate < 0 || cfg.rate > 1 || math.IsNaN(cfg.rate):
		return nil, errors.New("shadow: the sample rate must be between 0 and 1")
	case cfg.maxInFlight < 1 || cfg.logSize < 1 || cfg.timeout <= 0:
		return nil, errors.New("shadow: events in flight, log size and timeout must be positive")
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
	return ic, nil
}

// Watch implements pool.Watcher: the shadow's events go to the pool the
// interceptor wraps.
func (ic *Interceptor) Watch(p *pool.Pool) (stop func()) {
	ic.pool.Store(p)
	return func() {}
}

// Untimed implements pool.UntimedInterceptor: it never reads Call.Duration.
func (*Interceptor) Untimed() {}

// WrapSend implements pool.Interceptor.
func (ic *Interceptor) WrapSend(next pool.SendFunc) pool.SendFunc {
	return func(ctx context.Context, c *pool.Call) (*agentv2.AgentResponse, error) {
		resp, err := next(ctx, c)
		pair := *ic.pair.Load()
		// Sampled by correlation id, so a request is mirrored whole.
		if c.AgentID == pair[0] && (ic.limit == math.MaxUint64 || ic.hash(c.CorrelationID) < ic.limit) {
			ic.mirror(pair, c, resp, err)
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

// mirror sends the event to the shadow, after the primary answered it and
// before the caller gets that answer: the pool writes it without waiting
// for room or for the shadow's answer, which a job compares when it comes.
// Past the events in flight, or where the pool would have to wait, the
// event is dropped.
func (ic *Interceptor) mirror(pair [2]string, c *pool.Call, resp *agentv2.AgentResponse, err error) {
	p := ic.pool.Load()
	if p == nil {
		return // not wired to a pool
	}
	ic.closeMu.RLock()
	defer ic.closeMu.RUnlock()
	if ic.closed {
		return
	}
	if ic.inFlight.Add(1) > int64(ic.cfg.maxInFlight) {
		ic.inFlight.Add(-1)
		ic.count(pair, Dropped)
		return
	}
	ic.calls.Add(1)
	j, _ := jobs.Get().(*job)
	if j == nil {
		j = new(job)
		j.answered = j.answer
	}
	j.ic, j.pair, j.corr, j.kind, j.primaryErr = ic, pair, c.CorrelationID, c.Type, err
	if err == nil && c.FailOpen {
		j.primaryErr = errFailedOpen // the primary was not asked
	}
	if resp != nil {
		// The caller owns resp once Send returns: keep its encoding, into
		// the job's recycled buffer (a copy without allocations).
		var eerr error
		j.hasPrimary = true
		if j.primary, eerr = encode(j.primary[:0], resp); eerr != nil {
			j.primaryErr = fmt.Errorf("shadow: the primary's answer cannot be encoded: %w", eerr)
		}
	}
	p.Go(ic.callContext(), pair[1], c.Event, j.answered)
}

// encode appends resp's encoding to buf.
func encode(buf []byte, resp *agentv2.AgentResponse) ([]byte, error) {
	n := resp.SizeVT()
	buf = slices.Grow(buf, n)[:len(buf)+n]
	_, err := resp.MarshalToSizedBufferVT(buf[len(buf)-n:])
	return buf, err
}

// maxKept is the largest encoding a recycled job keeps its buffers for.
const maxKept = 16 << 10

// job is one mirrored event waiting for the shadow's answer. Pooled, with
// answered bound once.
type job struct {
	ic   *Interceptor
	pair [2]string
	corr string
	kind agentv2.EventType
	// primary is the encoding of the primary's answer, if hasPrimary;
	// scratch is for the shadow's. Both are kept when the job is recycled.
	primary, scratch []byte
	hasPrimary       bool
	primaryErr       error
	answered         func(*agentv2.AgentResponse, error) // j.answer
}

var jobs sync.Pool

// errFailedOpen stands for the primary's answer when the pool allowed the
// event without asking it (flow control's fail-open): there is nothing of
// the primary's to compare.
var errFailedOpen = errors.New("shadow: the pool allowed the event without asking the primary (fail-open)")

// answer compares the shadow's answer with the primary's. It runs on the
// goroutine that ends the shadow call (its connection's reader).
func (j *job) answer(resp *agentv2.AgentResponse, err error) {
	ic := j.ic
	switch {
	case err != nil && ic.ctx.Err() != nil:
		// Abandoned by Close: not the shadow's error.
	case err != nil && !agentwire.IsWireError(err) && agentwire.CodeOf(err) == agentwire.CodeResourceExhausted:
		ic.count(j.pair, Dropped) // the pool would have had to wait
	default:
		ic.compare(j, resp, err)
	}
	primary, scratch := j.primary[:0], j.scratch[:0]
	if cap(primary) > maxKept || cap(scratch) > maxKept {
		primary, scratch = nil, nil
	}
	*j = job{answered: j.answered, primary: primary, scratch: scratch}
	jobs.Put(j)
	ic.inFlight.Add(-1)
	ic.calls.Done()
}

func (ic *Interceptor) compare(j *job, resp *agentv2.AgentResponse, err error) {
	if j.hasPrimary && j.primaryErr == nil && err == nil && resp.GetDecision() != nil {
		// Answers encoded alike are equal, and so agree: the common case
		// needs no decoding. (Unlike encodings may still agree: maps have
		// no order, and compare ignores audit fields.)
		var eerr error
		if j.scratch, eerr = encode(j.scratch[:0], resp); eerr == nil && bytes.Equal(j.primary, j.scratch) {
			ic.count(j.pair, Agree)
			return
		}
	}
	var primary *agentv2.AgentResponse
	if j.hasPrimary && j.primaryErr == nil {
		primary = new(agentv2.AgentResponse)
		if uerr := primary.UnmarshalVT(j.primary); uerr != nil {
			j.primaryErr = fmt.Errorf("shadow: the primary's answer cannot be decoded: %w", uerr)
		}
	}
	r := compare(primary, resp, j.primaryErr, err)
	ic.count(j.pair, r)
	if r != Agree && r != PrimaryError {
		ic.log.add(Disagreement{
			Time: ic.cfg.now(), Primary: j.pair[0], Shadow: j.pair[1], Result: r,
			CorrelationID: j.corr, Event: j.kind.String(),
			PrimaryDecision: summary(primary, j.primaryErr), ShadowDecision: summary(resp, err),
			PrimaryTags: primary.GetAudit().GetTags(), ShadowTags: resp.GetAudit().GetTags(),
		})
	}
}

// deadline is the context of the shadow calls, shared by all of them and
// renewed once less than the timeout is left: each call gets one to two
// timeouts, for a timer (and a context watch per connection) per timeout
// rather than per call.
type deadline struct {
	ctx    context.Context
	cancel context.CancelFunc
	at     time.Time
}

func (ic *Interceptor) callContext() context.Context {
	now := time.Now()
	d := ic.deadline.Load()
	if d != nil && d.at.Sub(now) >= ic.cfg.timeout {
		return d.ctx
	}
	nd := &deadline{at: now.Add(2 * ic.cfg.timeout)}
	nd.ctx, nd.cancel = context.WithDeadline(ic.ctx, nd.at)
	if ic.deadline.CompareAndSwap(d, nd) {
		// The old context's calls keep it until its own deadline.
		return nd.ctx
	}
	nd.cancel()
	return ic.deadline.Load().ctx
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
// counted nor logged) and waits until each has ended. Close the pool after
// it.
func (ic *Interceptor) Close() {
	ic.closeMu.Lock()
	if ic.closed {
		ic.closeMu.Unlock()
		return
	}
	ic.closed = true
	ic.closeMu.Unlock()
	ic.cancel()
	ic.calls.Wait()
	ic.metrics.close()
}
