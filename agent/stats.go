package agent

import (
	"slices"
	"sync/atomic"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// latencySamples is how many recent handler latencies a connection keeps
// for its health reports' percentiles.
const latencySamples = 1024

// stats counts one connection's work. Its methods are safe for concurrent
// use and lock-free: workers record, the health loop reads.
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
