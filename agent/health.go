package agent

import (
	"slices"
	"sync/atomic"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// healthLoop sends a health report (and metrics) at once, then every
// interval, or sooner when kicked, until the session ends.
func (s *session) healthLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for s.sendHealth() == nil && s.sendMetrics() == nil {
		select {
		case <-t.C:
		case <-s.kick:
		case <-s.ctx.Done():
			return
		}
	}
}

// reportNow has the health loop report without waiting for the interval,
// for example after a drain.
func (s *session) reportNow() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *session) sendHealth() error {
	state := agentv2.HealthState_HEALTH_STATE_HEALTHY
	if s.srv.healthReporter != nil {
		if st := s.srv.healthReporter.Health(s.ctx); st != agentv2.HealthState_HEALTH_STATE_UNSPECIFIED {
			state = st
		}
	}
	s.mu.Lock()
	draining := s.draining
	load := &agentv2.LoadMetrics{InFlight: uint32(s.running), QueueDepth: uint32(s.pending - s.running)}
	s.mu.Unlock()
	if draining || s.srv.draining() {
		state = agentv2.HealthState_HEALTH_STATE_DRAINING
	}
	s.stats.load(load)
	return s.send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Health{Health: &agentv2.HealthStatus{
		AgentId:     s.srv.cfg.agentID,
		State:       state,
		Load:        load,
		TimestampMs: s.srv.nowMs(),
	}}})
}

// sendMetrics sends the handler's MetricsReporter report, if any.
func (s *session) sendMetrics() error {
	if s.srv.metrics == nil {
		return nil
	}
	r := s.srv.metrics.Metrics(s.ctx)
	if r == nil {
		return nil
	}
	if r.AgentId == "" {
		r.AgentId = s.srv.cfg.agentID
	}
	if r.TimestampMs == 0 {
		r.TimestampMs = s.srv.nowMs()
	}
	if r.IntervalMs == 0 {
		r.IntervalMs = uint64(s.interval.Milliseconds())
	}
	return s.send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Metrics{Metrics: r}})
}

// latencySamples is how many recent handler latencies a connection keeps
// for its health reports' percentiles.
const latencySamples = 1024

// stats counts one connection's work, lock-free: workers record, the health
// loop reads.
type stats struct {
	processed atomic.Uint64 // handler calls finished
	rejected  atomic.Uint64 // events refused: queue full or cancelled before they ran
	timedOut  atomic.Uint64 // events that ended with DeadlineExceeded
	unknown   atomic.Uint64 // frames or messages of unknown type, skipped
	stray     atomic.Uint64 // config responses nobody waited for

	next    atomic.Uint64                // samples recorded so far
	samples [latencySamples]atomic.Int64 // latency ring, microseconds
}

func (s *stats) record(d time.Duration) {
	s.processed.Add(1)
	i := s.next.Add(1) - 1
	s.samples[i%latencySamples].Store(d.Microseconds())
}

// load fills the latency and counter fields of a LoadMetrics.
func (s *stats) load(m *agentv2.LoadMetrics) {
	m.RequestsProcessed = s.processed.Load()
	m.RequestsRejected = s.rejected.Load()
	m.RequestsTimedOut = s.timedOut.Load()
	n := min(s.next.Load(), latencySamples)
	if n == 0 {
		return
	}
	buf := make([]int64, n)
	var sum int64
	for i := range buf {
		buf[i] = s.samples[i].Load()
		sum += buf[i]
	}
	slices.Sort(buf)
	ms := func(us int64) float32 { return float32(us) / 1000 }
	pct := func(p int) float32 { return ms(buf[(len(buf)-1)*p/100]) }
	m.AvgLatencyMs = ms(sum) / float32(n)
	m.P50LatencyMs = pct(50)
	m.P95LatencyMs = pct(95)
	m.P99LatencyMs = pct(99)
}
