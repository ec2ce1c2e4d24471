package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// FuzzSessionMatching drives a proxy connection with an agent whose every
// answer the fuzzer chooses: right, for another event or request, without
// an event id, without a decision, for an id never sent, an error, twice,
// late, after a cancel. Every call must end, with an error or an answer
// the agent addressed to it: its event id, if the answer has one, and its
// request's correlation id, always. (What the agent puts in an answer is
// its own business; where the proxy delivers it is the proxy's.) Every
// fourth event is sent with Go, whose answer comes to a done function.
func FuzzSessionMatching(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 1, 0, 2, 0, 3})
	f.Add([]byte{0, 0, 0, 0, 1, 0, 2, 0, 3})
	f.Add([]byte{9, 1, 0, 0, 1, 0, 0})              // swap, echo
	f.Add([]byte{9, 3, 0, 5, 1})                    // no id; never-sent id
	f.Add([]byte{8, 4, 0, 7, 1, 0, 1, 0, 1})        // no decision; cancel, then late
	f.Add([]byte{31, 0, 0, 0, 0, 6, 2, 0, 3, 0, 4}) // duplicates, errors
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) < 2 || len(prog) > 256 {
			return
		}
		echo := prog[0]&1 == 1
		events := 2 + int(prog[0]>>1)%14
		prog = prog[1:]

		proxyEnd, agentEnd := net.Pipe()
		defer agentEnd.Close()
		connCh := make(chan transport.Conn, 1)
		agentDone := make(chan struct{})
		var sent sync.Map // tag -> the *agentv2.AgentToProxy that carried it
		go func() {
			defer close(agentDone)
			matchFuzzAgent(agentEnd, echo, events, prog, connCh, &sent)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := transport.NewFramedConn(ctx, proxyEnd, "fuzz", transport.WithCallTimeout(time.Second))
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		connCh <- c

		// check asserts that ev's call ended with an error or an answer the
		// agent addressed to it.
		check := func(ev *agentv2.ProxyToAgent, corr string, r *agentv2.AgentResponse, err error) {
			if err != nil {
				var e *agentwire.Error
				if !errors.As(err, &e) {
					t.Errorf("untyped error %v", err)
				}
				return
			}
			m, ok := sent.Load(tagOf(r))
			if !ok {
				t.Errorf("event %s got an answer the agent never sent", tag(ev))
				return
			}
			to := m.(*agentv2.AgentToProxy)
			if id := to.GetEventId(); id != 0 && id != ev.GetEventId() || to.GetResponse().GetCorrelationId() != corr {
				t.Errorf("event %d of %s (echo %v) got the answer to event %d of %q", ev.GetEventId(), corr, echo,
					to.GetEventId(), to.GetResponse().GetCorrelationId())
			}
		}
		var wg sync.WaitGroup
		for i := range events {
			corr := fmt.Sprintf("r%d", i/2)
			ev := headersEvent(corr, "/")
			if i%2 == 1 {
				ev = bodyEvent(corr)
			}
			d := 300 * time.Millisecond
			if i%3 == 2 {
				d = 5 * time.Millisecond // gives up early: its answer comes late
			}
			if i%4 == 3 {
				// Sent with Go: its done function is called exactly once
				// (a second call would drive wg negative and panic).
				wg.Add(1)
				cctx, ccancel := context.WithTimeout(context.Background(), d)
				err := c.(transport.AsyncConn).Go(cctx, ev, func(r *agentv2.AgentResponse, err error) {
					defer wg.Done()
					defer ccancel()
					check(ev, corr, r, err)
				})
				if err != nil {
					ccancel()
					check(ev, corr, nil, err)
					wg.Done()
				}
				continue
			}
			wg.Go(func() {
				cctx, ccancel := context.WithTimeout(context.Background(), d)
				defer ccancel()
				r, err := c.Send(cctx, ev)
				check(ev, corr, r, err)
			})
		}
		calls := make(chan struct{})
		go func() { wg.Wait(); close(calls) }()
		select {
		case <-calls:
		case <-time.After(3 * time.Second):
			t.Fatal("a call hung")
		}
		_ = c.Close(context.Background())
		_ = agentEnd.Close()
		<-agentDone
	})
}

// matchFuzzAgent answers the handshake, gathers the proxy's events, then plays
// prog: two bytes an op, what to do and to which event.
func matchFuzzAgent(nc net.Conn, echo bool, events int, prog []byte, connCh <-chan transport.Conn, sent *sync.Map) {
	r := codec.NewReader(nc, 0)
	var first agentv2.ProxyToAgent
	if r.ReadProxyToAgent(&first) != nil {
		return
	}
	var wmu sync.Mutex
	send := func(m *agentv2.AgentToProxy) bool {
		wmu.Lock()
		defer wmu.Unlock()
		return codec.WriteFrameTo(nc, m, 0) == nil
	}
	if !send(reliabilityHandshake(echo)) {
		return
	}
	conn := <-connCh

	var mu sync.Mutex
	var seen []*agentv2.ProxyToAgent
	arrived := make(chan struct{}, events)
	var reader sync.WaitGroup
	defer func() {
		// Whatever the program left unanswered fails as the connection
		// ends, at once.
		time.Sleep(5 * time.Millisecond)
		_ = nc.Close()
		reader.Wait()
	}()
	reader.Go(func() {
		for {
			m := &agentv2.ProxyToAgent{}
			if r.ReadProxyToAgent(m) != nil {
				return
			}
			if _, ok := m.EventCorrelationID(); ok {
				mu.Lock()
				seen = append(seen, m)
				mu.Unlock()
				select {
				case arrived <- struct{}{}:
				default:
				}
			}
		}
	})
	deadline := time.After(50 * time.Millisecond)
	for range events {
		select {
		case <-arrived:
			continue
		case <-deadline:
		}
		break
	}
	pick := func(k byte) *agentv2.ProxyToAgent {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return nil
		}
		return seen[int(k)%len(seen)]
	}
	var last *agentv2.AgentToProxy
	for i := 0; i+1 < len(prog); i += 2 {
		op, ev, other := prog[i]%8, pick(prog[i+1]), pick(prog[i+1]+1)
		if ev == nil {
			return
		}
		corr, _ := ev.EventCorrelationID()
		ocorr, _ := other.EventCorrelationID()
		var m *agentv2.AgentToProxy
		switch op {
		case 0: // right
			m = answer(ev, decisionFor(ev), corr, echo)
		case 1: // another request's correlation id (echo only: undetectable without)
			if echo {
				m = answer(ev, decisionFor(other), ocorr, true)
			} else {
				m = answer(ev, decisionFor(ev), corr, false)
			}
		case 2: // another event's id
			m = answer(ev, decisionFor(ev), corr, echo)
			m.EventId = other.GetEventId()
		case 3: // no event id
			m = answer(ev, decisionFor(ev), corr, false)
		case 4: // no decision
			d := decisionFor(ev)
			d.Decision = nil
			m = answer(ev, d, corr, echo)
		case 5: // an id never sent
			m = answer(ev, decisionFor(ev), corr, echo)
			m.EventId = ev.GetEventId() + 1000
		case 6: // duplicate of the last answer, or an error
			if last != nil {
				m = last
			} else {
				d := &agentv2.AgentResponse{Error: &agentv2.Status{Code: 13, Message: "fuzz"}}
				m = answer(ev, d, corr, echo)
			}
		case 7: // the proxy cancels the request
			cctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			_ = conn.Cancel(cctx, &agentv2.CancelRequest{CorrelationId: corr, Reason: agentv2.CancelReason_CANCEL_REASON_TIMEOUT})
			cancel()
			continue
		}
		if m != last {
			tg := fmt.Sprintf("m%d", i)
			m.GetResponse().Audit = &agentv2.AuditMetadata{Tags: []string{tg}}
			sent.Store(tg, m)
		}
		if !send(m) {
			return
		}
		last = m
	}
}

// reliabilityHandshake is a successful handshake answer, echoing event ids
// or not.
func reliabilityHandshake(echo bool) *agentv2.AgentToProxy {
	hs := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
		ProtocolVersion: transport.ProtocolVersion, Success: true, Encoding: "protobuf",
		Capabilities: &agentv2.AgentCapabilities{ProtocolVersion: transport.ProtocolVersion, AgentId: "fuzz",
			Features: &agentv2.AgentFeatures{EchoesEventId: echo, Cancellation: true}},
	}}}
	return hs
}
