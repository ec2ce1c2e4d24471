package agent

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// checkingHandler checks, with WithBorrowedEvents, that every event it gets
// holds what the proxy sent, before and after it waits: correlation ids
// starting with "slow" sleep, so that the reader is taken over and later
// events wait for workers while the reader reads on. It echoes the URI in
// a header, so the proxy checks the answer was encoded from intact memory.
type checkingHandler struct {
	Base
	sleep time.Duration
}

func (h checkingHandler) RequestHeaders(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	cid := strings.Clone(ev.GetMetadata().GetCorrelationId())
	check := func(when string) error {
		if got := ev.GetMetadata().GetCorrelationId(); got != cid {
			return agentwire.Errorf(agentwire.CodeInternal, "%s: correlation id %q became %q", when, cid, got)
		}
		if ev.GetUri() != "/"+cid {
			return agentwire.Errorf(agentwire.CodeInternal, "%s: uri %q for %q", when, ev.GetUri(), cid)
		}
		for i, hd := range ev.GetHeaders() {
			if want := fmt.Sprintf("%s-%d", cid, i); hd.GetValue() != want {
				return agentwire.Errorf(agentwire.CodeInternal, "%s: header %d is %q, want %q", when, i, hd.GetValue(), want)
			}
		}
		if p := PeerFromContext(ctx); p == nil || p.Handshake().GetProxyId() != "test-proxy" {
			return agentwire.Errorf(agentwire.CodeInternal, "%s: handshake lost", when)
		}
		return nil
	}
	if err := check("on entry"); err != nil {
		return nil, err
	}
	if strings.HasPrefix(cid, "slow") {
		time.Sleep(h.sleep)
		if err := check("after sleeping"); err != nil {
			return nil, err
		}
	}
	return AllowSetRequestHeader("x-echo", ev.GetUri()), nil
}

func (h checkingHandler) RequestBodyChunk(_ context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	want := bytes.Repeat([]byte{byte(ev.GetChunkIndex())}, 300)
	if !bytes.Equal(ev.GetData(), want) {
		return nil, agentwire.Errorf(agentwire.CodeInternal, "chunk %d of %q holds other bytes", ev.GetChunkIndex(), ev.GetCorrelationId())
	}
	return AllowSetRequestHeader("x-echo", ev.GetCorrelationId()), nil
}

// checkedHeaders is a request-headers event checkingHandler accepts.
func checkedHeaders(id uint64, cid string) *agentv2.ProxyToAgent {
	m := requestHeaders(id, cid)
	ev := m.GetRequestHeaders()
	for i := range 8 {
		ev.Headers = append(ev.Headers, &agentv2.Header{Name: fmt.Sprint("x-h", i), Value: fmt.Sprintf("%s-%d", cid, i)})
	}
	return m
}

func checkedChunk(id uint64, cid string, index uint32) *agentv2.ProxyToAgent {
	m := bodyChunk(id, cid, index)
	m.GetRequestBodyChunk().Data = bytes.Repeat([]byte{byte(index)}, 300)
	return m
}

// echoed returns the x-echo header value of an answer, or its error.
func echoed(t *testing.T, resp *agentv2.AgentResponse) string {
	t.Helper()
	require.NotNil(t, resp)
	ops := resp.GetRequestHeaders()
	require.Len(t, ops, 1, "answer %v", resp)
	return ops[0].GetSet().GetValue()
}

// TestBorrowedEventsInline: quick handlers of borrowed events, pipelined
// by the thousand, see every event intact and answer from it; correlation
// ids longer than a lane keeps in itself work as well.
func TestBorrowedEventsInline(t *testing.T) {
	t.Parallel()
	e := startUDS(t, checkingHandler{}, WithBorrowedEvents(), WithMaxQueue(4000)) // the 3,000 unpaced events never overflow, even on a loaded machine
	c := e.dialReady()
	const n = 3000
	cids := make(map[uint64]string, n)
	go func() {
		for i := range n {
			cid := fmt.Sprintf("r%d-%s", i, strings.Repeat("x", i%70))
			c.Send(checkedHeaders(uint64(i+1), cid))
		}
	}()
	for i := range n {
		cids[uint64(i+1)] = fmt.Sprintf("r%d-%s", i, strings.Repeat("x", i%70))
	}
	got := c.responses(n)
	for id, resp := range got {
		assert.Equal(t, "/"+cids[id], echoed(t, resp), "event %d", id)
	}
	inlined, _, _ := inlineCounts(t, e.srv)
	assert.Positive(t, inlined, "borrowed events run on the reading goroutine")
	e.srv.mu.Lock()
	assert.NotNil(t, e.srv.sessions[0].lender, "the session lends the read buffer")
	e.srv.mu.Unlock()
}

// TestBorrowedEventsTakeoverAndWorkers: a handler sleeping past the budget
// gets the reading taken over while it still reads its event; the events
// read meanwhile, including a request's body chunks queued behind its
// sleeping headers, wait for workers and must not borrow the buffer the
// new reader fills.
func TestBorrowedEventsTakeoverAndWorkers(t *testing.T) {
	t.Parallel()
	e := startUDS(t, checkingHandler{sleep: 60 * time.Millisecond}, WithBorrowedEvents(),
		WithInlineBudget(time.Millisecond), WithMaxQueue(4000))
	c := e.dialReady()
	wants := make(map[uint64]string)
	var msgs []*agentv2.ProxyToAgent
	id := uint64(0)
	for i := range 600 {
		id++
		cid := fmt.Sprint("q", i)
		if i%100 == 0 {
			cid = fmt.Sprint("slow", i)
		}
		msgs = append(msgs, checkedHeaders(id, cid))
		wants[id] = "/" + cid
		if i%100 == 0 {
			for k := range 5 {
				id++
				msgs = append(msgs, checkedChunk(id, cid, uint32(k)))
				wants[id] = cid
			}
		}
	}
	go func() {
		for _, m := range msgs {
			c.Send(m)
		}
	}()
	got := c.responses(len(msgs))
	for id, resp := range got {
		assert.Equal(t, wants[id], echoed(t, resp), "event %d", id)
	}
	_, takeovers, _ := inlineCounts(t, e.srv)
	assert.Positive(t, takeovers, "slow handlers were taken over")
}

// TestBorrowedEventsOffByDefault: without the option, an event a handler
// keeps stays intact after the reader read on.
func TestBorrowedEventsOffByDefault(t *testing.T) {
	t.Parallel()
	kept := make(chan *agentv2.RequestHeadersEvent, 200)
	h := keepHandler{kept: kept}
	e := startUDS(t, h)
	c := e.dialReady()
	for i := range 200 {
		c.Send(checkedHeaders(uint64(i+1), fmt.Sprint("keep", i)))
	}
	c.responses(200)
	close(kept)
	i := 0
	for ev := range kept {
		cid := ev.GetMetadata().GetCorrelationId()
		require.Equal(t, "/"+cid, ev.GetUri())
		require.Equal(t, cid+"-7", ev.GetHeaders()[7].GetValue())
		i++
	}
	require.Equal(t, 200, i)
}

// keepHandler keeps a copy of the envelope structs of each event (not of
// its strings), as a handler unaware of WithBorrowedEvents might.
type keepHandler struct {
	Base
	kept chan *agentv2.RequestHeadersEvent
}

func (h keepHandler) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	h.kept <- ev.CloneVT()
	return Allow(), nil
}
