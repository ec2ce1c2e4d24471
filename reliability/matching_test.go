package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Decision safety: agents that lie, answer late, twice, or with nothing are
// driven at 64 in flight over every transport, with and without event-id
// echo. Every decision names the event it answers (an audit tag), so a
// caller can tell its own answer from another's: none may ever get
// another's.

// safetyEvents is how many events each load case sends (10,000 in long runs).
func safetyEvents() int {
	if os.Getenv("AGENTWIRE_LONG") != "" {
		return 10000
	}
	return 2000
}

const safetyInFlight = 64

// safetyTarget connects a transport.Conn to a scripted peer.
type safetyTarget struct {
	name    string
	connect func(t *testing.T, choose testagent.Chooser, opts ...transport.Option) transport.Conn
}

func safetyTargets() []safetyTarget {
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return c
	}
	closeConn := func(t *testing.T, c transport.Conn) {
		t.Cleanup(func() { _ = c.Close(context.Background()) })
	}
	grpcPeer := func(t *testing.T, choose testagent.Chooser) string {
		p, err := testagent.ListenGRPCPeer("127.0.0.1:0", choose)
		require.NoError(t, err)
		t.Cleanup(p.Close)
		return strings.TrimPrefix(p.Endpoint(), "grpc://")
	}
	return []safetyTarget{
		{name: "uds", connect: func(t *testing.T, choose testagent.Chooser, opts ...transport.Option) transport.Conn {
			path := filepath.Join(shortDir(t), "a.sock")
			p, err := testagent.ListenFramedPeer(path, choose)
			require.NoError(t, err)
			t.Cleanup(p.Close)
			c, err := transport.DialUnix(ctx(t), path, opts...)
			require.NoError(t, err)
			closeConn(t, c)
			return c
		}},
		{name: "grpc", connect: func(t *testing.T, choose testagent.Chooser, opts ...transport.Option) transport.Conn {
			c, err := transport.DialGRPC(ctx(t), grpcPeer(t, choose), opts...)
			require.NoError(t, err)
			closeConn(t, c)
			return c
		}},
		{name: "connect", connect: func(t *testing.T, choose testagent.Chooser, opts ...transport.Option) transport.Conn {
			c, err := transport.DialConnect(ctx(t), "http://"+grpcPeer(t, choose), opts...)
			require.NoError(t, err)
			closeConn(t, c)
			return c
		}},
		{name: "reverse", connect: func(t *testing.T, choose testagent.Chooser, opts ...transport.Option) transport.Conn {
			admitted := make(chan transport.Conn, 1)
			l, err := transport.NewReverseListener(transport.WithoutAuth(), transport.WithConnOptions(opts...),
				transport.WithAdmitHandler(func(_ string, c transport.Conn, _ *agentv2.RegistrationRequest) { admitted <- c }))
			require.NoError(t, err)
			path := filepath.Join(shortDir(t), "r.sock")
			ln, err := net.Listen("unix", path)
			require.NoError(t, err)
			sctx, stop := context.WithCancel(context.Background())
			served := make(chan struct{})
			go func() { defer close(served); _ = l.Serve(sctx, ln) }()
			t.Cleanup(func() { stop(); <-served })
			p, err := testagent.DialReversePeer(ctx(t), path, "victim", choose)
			require.NoError(t, err)
			t.Cleanup(p.Close)
			select {
			case c := <-admitted:
				closeConn(t, c)
				return c
			case <-time.After(10 * time.Second):
				t.Fatal("reverse connection not admitted")
				return nil
			}
		}},
	}
}

// tag is the audit tag that names an event: its request and kind.
func tag(ev *agentv2.ProxyToAgent) string {
	corr, _ := ev.EventCorrelationID()
	return corr + "/" + ev.EventType().String()
}

// tagOf is the tag a decision carries.
func tagOf(r *agentv2.AgentResponse) string {
	if tags := r.GetAudit().GetTags(); len(tags) == 1 {
		return tags[0]
	}
	return ""
}

// decisionFor answers ev: allow for request headers, block for the rest,
// tagged with ev.
func decisionFor(ev *agentv2.ProxyToAgent) *agentv2.AgentResponse {
	r := &agentv2.AgentResponse{Audit: &agentv2.AuditMetadata{Tags: []string{tag(ev)}}}
	if ev.EventType() == agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS {
		r.Decision = &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}
	} else {
		r.Decision = &agentv2.AgentResponse_Block{Block: &agentv2.BlockDecision{Status: 403}}
	}
	return r
}

// answer is ev's answer carrying resp, with ev's ids (the event id only
// when echo) and correlation id corr.
func answer(ev *agentv2.ProxyToAgent, resp *agentv2.AgentResponse, corr string, echo bool) *agentv2.AgentToProxy {
	resp.CorrelationId = corr
	m := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Response{Response: resp}}
	if echo {
		m.EventId = ev.GetEventId()
	}
	return m
}

// accept answers the handshake, declaring echo or not.
func accept(c *testagent.PeerConn, echo bool) error {
	hs := testagent.HandshakeResponse("victim")
	hs.GetHandshake().GetCapabilities().GetFeatures().EchoesEventId = echo
	return c.Send(hs)
}

// answering is a script that accepts the handshake and answers each event,
// in arrival order, with what reply returns for it.
func answering(echo bool, reply func(ev *agentv2.ProxyToAgent, corr string) []*agentv2.AgentToProxy) testagent.Chooser {
	return func(*agentv2.ProxyToAgent) testagent.Script {
		return func(pc *testagent.PeerConn) {
			if accept(pc, echo) != nil {
				return
			}
			for {
				ev, err := pc.RecvEvent()
				if err != nil {
					return
				}
				corr, _ := ev.EventCorrelationID()
				for _, m := range reply(ev, corr) {
					if pc.Send(m) != nil {
						return
					}
				}
			}
		}
	}
}

func bodyEvent(corr string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: corr, Data: []byte("body"), IsLast: true}}}
}

// tally counts what the callers of a load got.
type tally struct {
	own, wrong atomic.Int64
	mu         sync.Mutex
	errs       map[string]int // by code and sentinel
}

func (ty *tally) err(err error) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	if ty.errs == nil {
		ty.errs = make(map[string]int)
	}
	k := agentwire.CodeOf(err).String()
	for _, s := range []error{transport.ErrMismatch, transport.ErrNoDecision, transport.ErrUnmatchable, transport.ErrProtocol} {
		if errors.Is(err, s) {
			k += " " + s.Error()
			break
		}
	}
	ty.errs[k]++
}

// got checks a caller's result for event ev.
func (ty *tally) got(t *testing.T, ev *agentv2.ProxyToAgent, r *agentv2.AgentResponse, err error) {
	switch {
	case err != nil:
		var e *agentwire.Error
		if !errors.As(err, &e) {
			t.Errorf("untyped error %v", err)
		}
		ty.err(err)
	case tagOf(r) == tag(ev):
		ty.own.Add(1)
	default:
		ty.wrong.Add(1)
		t.Errorf("event %s got the decision for %q", tag(ev), tagOf(r))
	}
}

func (ty *tally) String() string {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	return fmt.Sprintf("own %d, wrong %d, errors %v", ty.own.Load(), ty.wrong.Load(), ty.errs)
}

// load runs requests 1..n on safetyInFlight workers.
func load(n int, req func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range safetyInFlight {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				req(i)
			}
		})
	}
	wg.Wait()
}

func TestDecisionSafety(t *testing.T) {
	t.Parallel()
	for _, tg := range safetyTargets() {
		for _, echo := range []bool{true, false} {
			mode := "echo"
			if !echo {
				mode = "noecho"
			}
			t.Run(tg.name+"-"+mode, func(t *testing.T) {
				t.Run("SwappedAnswers", func(t *testing.T) { swappedAnswers(t, tg, echo) })
				if echo {
					t.Run("RightIDOtherRequest", func(t *testing.T) { rightIDOtherRequest(t, tg) })
					t.Run("NeverSentID", func(t *testing.T) { neverSentID(t, tg) })
				}
				t.Run("LateAfterTimeout", func(t *testing.T) { lateAfterTimeout(t, tg, echo) })
				t.Run("LateAfterCancel", func(t *testing.T) { lateAfterCancel(t, tg, echo) })
				t.Run("NoDecision", func(t *testing.T) { noDecision(t, tg, echo) })
				t.Run("Duplicates", func(t *testing.T) { duplicates(t, tg, echo) })
			})
		}
	}
}

// swappedAnswers: the agent answers events in pairs, each with the other's
// decision and correlation id (and, echoing, its own event id). Echoing,
// the first such answer closes the connection; without echo the answers
// are simply out of order, and each goes to its own request.
func swappedAnswers(t *testing.T, tg safetyTarget, echo bool) {
	c := tg.connect(t, func(*agentv2.ProxyToAgent) testagent.Script {
		return func(pc *testagent.PeerConn) {
			if accept(pc, echo) != nil {
				return
			}
			for {
				a, err := pc.RecvEvent()
				if err != nil {
					return
				}
				b, err := pc.RecvEvent()
				if err != nil {
					return
				}
				ca, _ := a.EventCorrelationID()
				cb, _ := b.EventCorrelationID()
				if pc.Send(answer(a, decisionFor(b), cb, echo)) != nil || pc.Send(answer(b, decisionFor(a), ca, echo)) != nil {
					return
				}
			}
		}
	})
	var ty tally
	// Two requests at a time, so that every event has a partner.
	load(safetyEvents()/2, func(i int) {
		var wg sync.WaitGroup
		for _, side := range []string{"a", "b"} {
			wg.Go(func() {
				ev := headersEvent(fmt.Sprintf("req-%d%s", i, side), "/")
				r, err := c.Send(context.Background(), ev)
				ty.got(t, ev, r, err)
			})
		}
		wg.Wait()
	})
	t.Log(ty.String())
	assert.Zero(t, ty.wrong.Load())
	if echo {
		assert.Zero(t, ty.own.Load(), "an answer of a lying agent was delivered")
		require.ErrorIs(t, c.Err(), transport.ErrMismatch)
		assert.Equal(t, agentwire.CodeInternal, agentwire.CodeOf(c.Err()))
		assert.Positive(t, ty.errs["internal "+transport.ErrMismatch.Error()])
	} else {
		assert.Positive(t, ty.own.Load())
	}
}

// rightIDOtherRequest: the agent echoes the right event id with another
// request's correlation id and decision.
func rightIDOtherRequest(t *testing.T, tg safetyTarget) {
	prev := headersEvent("someone-else", "/") // only the script's goroutine uses it
	c := tg.connect(t, answering(true, func(ev *agentv2.ProxyToAgent, _ string) []*agentv2.AgentToProxy {
		pcorr, _ := prev.EventCorrelationID()
		m := answer(ev, decisionFor(prev), pcorr, true)
		prev = ev
		return []*agentv2.AgentToProxy{m}
	}))
	var ty tally
	load(safetyEvents(), func(i int) {
		ev := headersEvent(fmt.Sprintf("req-%d", i), "/")
		r, err := c.Send(context.Background(), ev)
		ty.got(t, ev, r, err)
	})
	t.Log(ty.String())
	assert.Zero(t, ty.wrong.Load()+ty.own.Load())
	require.ErrorIs(t, c.Err(), transport.ErrMismatch)
	assert.Equal(t, transport.StateClosed, c.Status().State)
}

// neverSentID: the agent answers an event id the proxy never sent.
func neverSentID(t *testing.T, tg safetyTarget) {
	c := tg.connect(t, func(*agentv2.ProxyToAgent) testagent.Script {
		return afterFirstEvent(func(pc *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			m := testagent.Response(ev, nil)
			m.EventId += 1 << 20
			return pc.Send(m)
		})
	})
	_, err := c.Send(context.Background(), headersEvent("victim-1", "/"))
	require.ErrorIs(t, err, transport.ErrProtocol)
	assert.Equal(t, agentwire.CodeInternal, agentwire.CodeOf(err))
	<-c.Done()
}

// lateAfterTimeout: each request sends headers with a short deadline that
// passes before the agent answers them, then a body chunk the agent
// answers at once. The body's caller must get the body's block, never
// the headers' late allow.
func lateAfterTimeout(t *testing.T, tg safetyTarget, echo bool) {
	const (
		deadline = 15 * time.Millisecond
		delay    = 40 * time.Millisecond
	)
	var agentHeaders atomic.Int64 // headers the agent received
	c := tg.connect(t, func(*agentv2.ProxyToAgent) testagent.Script {
		return func(pc *testagent.PeerConn) {
			if accept(pc, echo) != nil {
				return
			}
			// Per request: the headers' answer waits delay; the body's
			// follows it (agents without echo answer a request in order).
			var mu sync.Mutex
			headersDone := make(map[string]chan struct{})
			var wg sync.WaitGroup
			defer wg.Wait()
			for {
				ev, err := pc.RecvEvent()
				if err != nil {
					return
				}
				corr, _ := ev.EventCorrelationID()
				if ev.EventType() == agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS {
					agentHeaders.Add(1)
					done := make(chan struct{})
					mu.Lock()
					headersDone[corr] = done
					mu.Unlock()
					wg.Go(func() {
						defer close(done)
						time.Sleep(delay)
						_ = pc.Send(answer(ev, decisionFor(ev), corr, echo))
					})
					continue
				}
				mu.Lock()
				done := headersDone[corr]
				delete(headersDone, corr)
				mu.Unlock()
				wg.Go(func() {
					if done != nil {
						<-done
					}
					_ = pc.Send(answer(ev, decisionFor(ev), corr, echo))
				})
			}
		}
	})
	var ty tally
	var timedOut, headersOK atomic.Int64
	load(safetyEvents()/2, func(i int) {
		corr := fmt.Sprintf("req-%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		_, err := c.Send(ctx, headersEvent(corr, "/"))
		cancel()
		switch {
		case err == nil:
			headersOK.Add(1)
		case agentwire.CodeOf(err) == agentwire.CodeDeadlineExceeded:
			timedOut.Add(1)
		default:
			t.Errorf("headers: %v", err)
		}
		ev := bodyEvent(corr)
		r, err := c.Send(context.Background(), ev)
		ty.got(t, ev, r, err)
	})
	t.Log(ty.String(), "; headers timed out: ", timedOut.Load())
	assert.Zero(t, ty.wrong.Load())
	assert.Positive(t, timedOut.Load())
	assert.Equal(t, int64(safetyEvents()/2), ty.own.Load(), "every body caller gets its own block: %s", ty.String())
	require.NoError(t, c.Err())
	// Every headers event the agent got and whose caller had given up
	// was answered late (a caller may also give up before its event
	// leaves: it is then never sent).
	eventually(t, 5*time.Second, "late answers counted", func() bool {
		return c.Status().LateResponses == uint64(agentHeaders.Load()-headersOK.Load())
	})
	assert.Zero(t, c.Status().DuplicateResponses)
}

// lateAfterCancel: each request's headers and body are cancelled while the
// agent sits on them; it answers both after the cancel. Then the request
// sends request-complete: echoing, it gets its own answer; without echo it
// fails with ErrUnmatchable, never with a late answer.
func lateAfterCancel(t *testing.T, tg safetyTarget, echo bool) {
	// arrived[corr] closes when the agent holds both events of corr.
	var arrived sync.Map
	c := tg.connect(t, func(*agentv2.ProxyToAgent) testagent.Script {
		return func(pc *testagent.PeerConn) {
			if accept(pc, echo) != nil {
				return
			}
			held := make(map[string][]*agentv2.ProxyToAgent)
			for {
				m, err := pc.Recv()
				if err != nil {
					return
				}
				if cn := m.GetCancel(); cn != nil {
					for _, ev := range held[cn.GetCorrelationId()] {
						if pc.Send(answer(ev, decisionFor(ev), cn.GetCorrelationId(), echo)) != nil {
							return
						}
					}
					delete(held, cn.GetCorrelationId())
					continue
				}
				corr, ok := m.EventCorrelationID()
				if !ok {
					continue
				}
				if m.EventType() == agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE {
					if pc.Send(answer(m, decisionFor(m), corr, echo)) != nil {
						return
					}
					continue
				}
				held[corr] = append(held[corr], m)
				if len(held[corr]) == 2 {
					if ch, ok := arrived.Load(corr); ok {
						close(ch.(chan struct{}))
					}
				}
			}
		}
	})
	var ty tally
	var cancelled atomic.Int64
	load(safetyEvents()/3, func(i int) {
		corr := fmt.Sprintf("req-%d", i)
		both := make(chan struct{})
		arrived.Store(corr, both)
		var wg sync.WaitGroup
		for _, ev := range []*agentv2.ProxyToAgent{headersEvent(corr, "/"), bodyEvent(corr)} {
			wg.Go(func() {
				_, err := c.Send(context.Background(), ev)
				if agentwire.CodeOf(err) == agentwire.CodeCanceled {
					cancelled.Add(1)
				} else {
					t.Errorf("held event: got %v, want cancelled", err)
				}
			})
		}
		// Both events reach the agent before the cancel.
		select {
		case <-both:
		case <-time.After(5 * time.Second):
			t.Errorf("%s: the agent did not get both events", corr)
		}
		_ = c.Cancel(context.Background(), &agentv2.CancelRequest{CorrelationId: corr, Reason: agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT})
		wg.Wait()
		ev := completeEvent(corr)
		r, err := c.Send(context.Background(), ev)
		switch {
		case echo:
			ty.got(t, ev, r, err)
		case err == nil:
			ty.got(t, ev, r, err) // counts a wrong delivery
		default:
			assert.ErrorIs(t, err, transport.ErrUnmatchable)
			assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(err))
			ty.err(err)
		}
	})
	t.Log(ty.String())
	assert.Zero(t, ty.wrong.Load())
	if echo {
		assert.Positive(t, ty.own.Load())
	} else {
		assert.Zero(t, ty.own.Load())
	}
	require.NoError(t, c.Err())
	assert.Positive(t, cancelled.Load())
	eventually(t, 5*time.Second, "late answers counted", func() bool { return c.Status().LateResponses >= uint64(cancelled.Load()) })
}

// noDecision: the agent answers every other event with neither a decision
// nor an error. Those calls fail with ErrNoDecision; the rest are served.
func noDecision(t *testing.T, tg safetyTarget, echo bool) {
	c := tg.connect(t, answering(echo, func(ev *agentv2.ProxyToAgent, corr string) []*agentv2.AgentToProxy {
		resp := decisionFor(ev)
		if strings.HasSuffix(ev.GetRequestHeaders().GetUri(), "/empty") {
			resp.Decision = nil
		}
		return []*agentv2.AgentToProxy{answer(ev, resp, corr, echo)}
	}))
	var ty tally
	var empty atomic.Int64
	load(safetyEvents(), func(i int) {
		uri := "/"
		if i%2 == 0 {
			uri = "/empty"
		}
		ev := headersEvent(fmt.Sprintf("req-%d", i), uri)
		r, err := c.Send(context.Background(), ev)
		if uri == "/empty" {
			empty.Add(1)
			if assert.ErrorIs(t, err, transport.ErrNoDecision) {
				assert.Equal(t, agentwire.CodeInternal, agentwire.CodeOf(err))
			}
			assert.Nil(t, r)
			return
		}
		ty.got(t, ev, r, err)
	})
	t.Log(ty.String())
	assert.Zero(t, ty.wrong.Load())
	assert.Equal(t, int64(safetyEvents())-empty.Load(), ty.own.Load(), ty.String())
	require.NoError(t, c.Err())
}

// duplicates: the agent answers each event twice. The first answer wins,
// the second is counted as a duplicate.
func duplicates(t *testing.T, tg safetyTarget, echo bool) {
	c := tg.connect(t, answering(echo, func(ev *agentv2.ProxyToAgent, corr string) []*agentv2.AgentToProxy {
		return []*agentv2.AgentToProxy{answer(ev, decisionFor(ev), corr, echo), answer(ev, decisionFor(ev), corr, echo)}
	}))
	var ty tally
	load(safetyEvents(), func(i int) {
		ev := headersEvent(fmt.Sprintf("req-%d", i), "/")
		r, err := c.Send(context.Background(), ev)
		ty.got(t, ev, r, err)
	})
	t.Log(ty.String())
	assert.Zero(t, ty.wrong.Load())
	assert.Equal(t, int64(safetyEvents()), ty.own.Load(), ty.String())
	require.NoError(t, c.Err())
	eventually(t, 5*time.Second, "duplicates counted", func() bool { return c.Status().DuplicateResponses >= uint64(safetyEvents()) })
	assert.Equal(t, uint64(safetyEvents()), c.Status().DuplicateResponses)
	assert.Zero(t, c.Status().LateResponses)
}

// TestDecisionSafetyThroughPool is the attack the issue was filed with: a
// pool with 4 connections to an agent that answers each pair of events
// with each other's decision and correlation id, 64 callers in flight.
// The pool redials the lying agent again and again; no caller ever gets a
// decision, let alone another's, and every violation is counted.
func TestDecisionSafetyThroughPool(t *testing.T) {
	t.Parallel()
	path := filepath.Join(shortDir(t), "a.sock")
	p, err := testagent.ListenFramedPeer(path, func(*agentv2.ProxyToAgent) testagent.Script {
		return func(pc *testagent.PeerConn) {
			if accept(pc, true) != nil {
				return
			}
			for {
				a, err := pc.RecvEvent()
				if err != nil {
					return
				}
				b, err := pc.RecvEvent()
				if err != nil {
					return
				}
				ca, _ := a.EventCorrelationID()
				cb, _ := b.EventCorrelationID()
				if pc.Send(answer(a, decisionFor(b), cb, true)) != nil || pc.Send(answer(b, decisionFor(a), ca, true)) != nil {
					return
				}
			}
		}
	})
	require.NoError(t, err)
	defer p.Close()
	pl, err := pool.New(pool.WithReconnectBackoff(time.Millisecond, 20*time.Millisecond), pool.WithConnections(4),
		pool.WithLogger(slog.New(slog.DiscardHandler)), pool.WithTransportOptions(transport.WithLogger(slog.New(slog.DiscardHandler))))
	require.NoError(t, err)
	defer pl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, pl.AddAgent(ctx, "liar", "unix://"+path))

	var ty tally
	load(safetyEvents()/2, func(i int) {
		var wg sync.WaitGroup
		for _, side := range []string{"a", "b"} {
			wg.Go(func() {
				ev := headersEvent(fmt.Sprintf("req-%d%s", i, side), "/")
				cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer ccancel()
				r, err := pl.Send(cctx, "liar", ev)
				ty.got(t, ev, r, err)
			})
		}
		wg.Wait()
	})
	t.Log(ty.String())
	assert.Zero(t, ty.wrong.Load(), "decisions delivered to the wrong caller")
	assert.Zero(t, ty.own.Load(), "decisions of a lying agent delivered")
	assert.Positive(t, ty.errs["internal "+transport.ErrMismatch.Error()])
	st, err := pl.AgentStats("liar")
	require.NoError(t, err)
	assert.Positive(t, st.ProtocolViolations)
	figure(t, "safety.pool.liar", "%d events at 64 in flight through a 4-connection pool: %s; %d connections closed for violations",
		safetyEvents(), ty.String(), st.ProtocolViolations)
}
