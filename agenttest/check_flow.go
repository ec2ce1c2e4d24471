package agenttest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire/transport"
)

// maxFlowEvents caps the overload the flow-control check drives.
const maxFlowEvents = 4096

// checkFlowControl sends twice the agent's concurrency limit at once,
// ignoring pauses, and expects the agent to pause the connection or answer
// everything; after a pause it must resume.
func checkFlowControl(ctx context.Context, s *suite) (string, error) {
	var paused atomic.Bool
	c, err := s.dial(ctx, transport.WithStatusHandler(func(st transport.Status) {
		if st.State == transport.StatePaused {
			paused.Store(true)
		}
	}))
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer closeConn(c)
	caps := c.Capabilities()
	limit := int(caps.GetLimits().GetMaxConcurrency())
	if limit <= 0 {
		limit = int(caps.GetFeatures().GetConcurrentRequests())
	}
	events := maxFlowEvents
	if limit > 0 {
		events = min(2*limit+1, maxFlowEvents)
	}
	requests := min(events, max(1, s.cfg.loadRequests))
	corrs := make([]string, requests)
	for i := range corrs {
		corrs[i] = s.corrID()
		if _, err := sendMatched(ctx, c, s.requestHeaders(corrs[i], "POST", s.cfg.allowPath)); err != nil {
			return "", fmt.Errorf("opening requests: %w", err)
		}
	}
	start := time.Now()
	var t tally
	var wg sync.WaitGroup
	for i := range events {
		ev := s.event(kindRequestBodyChunk, corrs[i%requests], uint32(i/requests))
		wg.Go(func() { t.send(ctx, c, ev, false) })
	}
	wg.Wait()
	if err := t.err(); err != nil {
		return "", err
	}
	detail := fmt.Sprintf("%d events at once (limit %d): %d answered, %d rejected with an error, %v",
		events, limit, t.answered.Load(), t.rejected.Load(), time.Since(start).Round(time.Millisecond))
	if !paused.Load() {
		if t.rejected.Load() > 0 {
			return "", fmt.Errorf("%s; rejected events without pausing the connection", detail)
		}
		return detail + "; no pause needed", nil
	}
	if err := c.WaitResume(ctx, ""); err != nil {
		return "", fmt.Errorf("%s; paused but never resumed: %w", detail, err)
	}
	return detail + "; paused and resumed", nil
}
