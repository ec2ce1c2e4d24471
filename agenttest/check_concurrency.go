package agenttest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// tally collects the outcome of many concurrent sends.
type tally struct {
	answered atomic.Int64 // right correlation id, no error
	rejected atomic.Int64 // the agent answered with an error
	inFlight atomic.Int64
	peak     atomic.Int64
	mu       sync.Mutex // mu guards firstErr and failures
	firstErr error
	failures int
}

func (t *tally) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures++
	if t.firstErr == nil {
		t.firstErr = err
	}
}

func (t *tally) enter() {
	n := t.inFlight.Add(1)
	for {
		p := t.peak.Load()
		if n <= p || t.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (t *tally) leave() { t.inFlight.Add(-1) }

// send sends ev honouring the agent's pauses when respectPause is set, and
// records the outcome.
func (t *tally) send(ctx context.Context, c transport.Conn, ev *agentv2.ProxyToAgent, respectPause bool) {
	if respectPause {
		corr, _ := ev.EventCorrelationID()
		if err := c.WaitResume(ctx, corr); err != nil {
			t.fail(fmt.Errorf("waiting for the agent to resume: %w", err))
			return
		}
	}
	t.enter()
	resp, err := sendMatched(ctx, c, ev)
	t.leave()
	switch {
	case err != nil:
		t.fail(err)
	case resp.GetError() != nil:
		t.rejected.Add(1)
	default:
		t.answered.Add(1)
	}
}

func (t *tally) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.firstErr == nil {
		return nil
	}
	return fmt.Errorf("%d events failed, first: %w", t.failures, t.firstErr)
}

// checkManyInFlight opens many requests at once, then sends body chunks for
// all of them at once, and checks every answer carries its event's
// correlation id. It honours the agent's concurrency limit and pauses: this
// is how a proxy behaves, and overload is the flow-control check's job.
func checkManyInFlight(ctx context.Context, s *suite) (string, error) {
	c, err := s.dial(ctx)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer closeConn(c)
	requests := max(1, s.cfg.loadRequests)
	events := max(requests, s.cfg.loadEvents)
	window := events
	if n := int(c.Capabilities().GetLimits().GetMaxConcurrency()); n > 0 && n < window {
		window = n
	}
	sem := make(chan struct{}, window)
	var t tally
	run := func(evs []*agentv2.ProxyToAgent) {
		var wg sync.WaitGroup
		for _, ev := range evs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				t.fail(ctx.Err())
				wg.Wait()
				return
			}
			wg.Go(func() {
				defer func() { <-sem }()
				t.send(ctx, c, ev, true)
			})
		}
		wg.Wait()
	}

	start := time.Now()
	corrs := make([]string, requests)
	opening := make([]*agentv2.ProxyToAgent, requests)
	for i := range corrs {
		corrs[i] = s.corrID()
		opening[i] = s.requestHeaders(corrs[i], "POST", s.cfg.allowPath)
	}
	run(opening)
	if err := t.err(); err != nil {
		return "", fmt.Errorf("opening %d requests: %w", requests, err)
	}
	chunks := make([]*agentv2.ProxyToAgent, 0, events-requests)
	for i := range events - requests {
		chunks = append(chunks, s.event(kindRequestBodyChunk, corrs[i%requests], uint32(i/requests)))
	}
	run(chunks)
	if err := t.err(); err != nil {
		return "", err
	}
	detail := fmt.Sprintf("%d events over %d requests matched, up to %d in flight, %v", events, requests, t.peak.Load(), time.Since(start).Round(time.Millisecond))
	if n := t.rejected.Load(); n > 0 {
		detail += fmt.Sprintf(", %d answered with an error", n)
	}
	return detail, nil
}

// checkSameRequest keeps two events of one request in flight at once.
func checkSameRequest(ctx context.Context, s *suite) (string, error) {
	c, err := s.conn(ctx)
	if err != nil {
		return "", err
	}
	corr := s.corrID()
	if _, err := sendMatched(ctx, c, s.requestHeaders(corr, "POST", s.cfg.allowPath)); err != nil {
		return "", fmt.Errorf("opening request: %w", err)
	}
	var t tally
	var wg sync.WaitGroup
	for i := range uint32(2) {
		wg.Go(func() { t.send(ctx, c, s.event(kindRequestBodyChunk, corr, i), false) })
	}
	wg.Wait()
	if err := t.err(); err != nil {
		return "", err
	}
	return fmt.Sprintf("2 body chunks of one request answered, up to %d in flight", t.peak.Load()), nil
}

// checkCancel cancels an in-flight request and then all requests, and
// checks the connection keeps working.
func checkCancel(ctx context.Context, s *suite) (string, error) {
	c, err := s.dial(ctx)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer closeConn(c)
	corr := s.corrID()
	if _, err := sendMatched(ctx, c, s.requestHeaders(corr, "POST", s.cfg.allowPath)); err != nil {
		return "", fmt.Errorf("opening request: %w", err)
	}
	// Several chunks, so that some are still in flight when the cancel goes
	// out even on a fast agent.
	const chunks = 16
	sent := make(chan error, chunks)
	var started, wg sync.WaitGroup
	defer wg.Wait()
	started.Add(chunks)
	for i := range uint32(chunks) {
		wg.Go(func() {
			ev := s.event(kindRequestBodyChunk, corr, i)
			started.Done()
			_, err := c.Send(ctx, ev)
			sent <- err
		})
	}
	started.Wait()
	if err := c.Cancel(ctx, &agentv2.CancelRequest{CorrelationId: corr, Reason: agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT}); err != nil {
		return "", fmt.Errorf("sending cancel: %w", err)
	}
	cancelled := 0
	for range chunks {
		select {
		case err := <-sent:
			switch {
			case err == nil:
			case agentwire.CodeOf(err) == agentwire.CodeCanceled || agentwire.IsWireError(err):
				cancelled++
			case errors.Is(err, transport.ErrUnmatchable):
				// Not sent: after the cancel, answers of an agent that does
				// not echo event ids can no longer be matched (§6).
				cancelled++
			case agentwire.CodeOf(err) == agentwire.CodeUnavailable:
				// An event sent just after the cancel found the connection
				// gone: the agent dropped it on the cancel.
				return "", fmt.Errorf("connection lost after cancel: %w", err)
			default:
				return "", fmt.Errorf("cancelled request's event: %w", err)
			}
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the cancelled request's events: %w", ctx.Err())
		}
	}
	if _, err := sendMatched(ctx, c, s.requestHeaders(s.corrID(), "GET", s.cfg.allowPath)); err != nil {
		return "", fmt.Errorf("request after cancel: %w", err)
	}
	if err := c.Cancel(ctx, &agentv2.CancelRequest{Reason: agentv2.CancelReason_CANCEL_REASON_PROXY_SHUTDOWN}); err != nil {
		return "", fmt.Errorf("sending cancel-all: %w", err)
	}
	if _, err := sendMatched(ctx, c, s.requestHeaders(s.corrID(), "GET", s.cfg.allowPath)); err != nil {
		return "", fmt.Errorf("request after cancel-all: %w", err)
	}
	if _, err := c.Ping(ctx); err != nil {
		return "", fmt.Errorf("ping after cancel: %w", err)
	}
	if err := c.Err(); err != nil {
		return "", fmt.Errorf("connection failed after cancel: %w", err)
	}
	return fmt.Sprintf("%d of %d events cancelled in flight; requests after cancel and cancel-all answered", cancelled, chunks), nil
}

// checkPing measures three round trips.
func checkPing(ctx context.Context, s *suite) (string, error) {
	c, err := s.conn(ctx)
	if err != nil {
		return "", err
	}
	var rtts []time.Duration
	for range 3 {
		rtt, err := c.Ping(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				return "", fmt.Errorf("no pong: %w", err)
			}
			return "", err
		}
		rtts = append(rtts, rtt)
	}
	return fmt.Sprintf("3 pongs, rtt %v / %v / %v", rtts[0].Round(time.Microsecond), rtts[1].Round(time.Microsecond), rtts[2].Round(time.Microsecond)), nil
}
