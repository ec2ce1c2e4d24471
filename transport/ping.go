package transport

import (
	"context"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Ping implements Conn.
func (s *session) Ping(ctx context.Context) (time.Duration, error) {
	seq := s.pingSeq.Add(1)
	ch := make(chan struct{})
	s.mu.Lock()
	err := s.err
	if err == nil {
		s.pings[seq] = ch
	}
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	defer func() {
		s.mu.Lock()
		delete(s.pings, seq)
		s.mu.Unlock()
	}()
	start := time.Now()
	msg := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{
		Sequence: seq, TimestampMs: uint64(s.cfg.now().UnixMilli()),
	}}}
	if err := s.w.send(ctx, msg); err != nil {
		return 0, s.sendErr(err)
	}
	select {
	case <-ch: // a pong, or the connection failed
	case <-ctx.Done():
		return 0, agentwire.WrapContextError(ctx.Err())
	}
	rtt := time.Since(start)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	s.rtt = rtt
	return rtt, nil
}

// VisitPong wakes the Ping waiting for this sequence number.
func (s *session) VisitPong(_ *agentv2.AgentToProxy, p *agentv2.Pong) error {
	s.mu.Lock()
	ch := s.pings[p.GetSequence()]
	delete(s.pings, p.GetSequence())
	s.mu.Unlock()
	if ch != nil {
		close(ch)
	}
	return nil
}

// VisitPing answers the agent's ping in the background.
func (s *session) VisitPing(x *agentv2.AgentToProxy, p *agentv2.Ping) error {
	pong := &agentv2.ProxyToAgent{EventId: x.GetEventId(), Message: &agentv2.ProxyToAgent_Pong{Pong: &agentv2.Pong{
		Sequence:        p.GetSequence(),
		PingTimestampMs: p.GetTimestampMs(),
		TimestampMs:     uint64(s.cfg.now().UnixMilli()),
	}}}
	s.goBackground("pong", func(ctx context.Context) { _ = s.w.send(ctx, pong) })
	return nil
}
