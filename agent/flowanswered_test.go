package agent

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// withAnsweredHook runs f between an answer sent and its accounting.
func withAnsweredHook(f func()) Option { return optionFunc(func(c *config) { c.answeredHook = f }) }

// An event whose answer is on its way no longer counts for flow control:
// the agent resumes the connection before the proxy has the answers that
// bring it under the mark, so an event the proxy sends as soon as it has
// them finds the connection resumed, not paused by events the agent has
// answered but not yet accounted for.
func TestFlowControlCountsAnsweredEvents(t *testing.T) {
	forEachTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		h := newBlockHandler()
		gate := make(chan struct{})
		var once sync.Once
		// Pause at 2 events, resume at 1; every event on a worker, each
		// held after its answer until the gate opens.
		e := start(t, h, WithMaxConcurrency(2), WithInlineBudget(0), withAnsweredHook(func() { <-gate }))
		// Registered after start, so it runs before the server's close,
		// which waits for the workers the gate holds.
		t.Cleanup(func() { once.Do(func() { close(gate) }) })
		c := e.dialReady()
		for i := 1; i <= 2; i++ {
			c.Send(requestHeaders(uint64(i), fmt.Sprint("r", i)))
		}
		h.waitStarted(t, 2)
		require.Equal(t, agentv2.FlowAction_FLOW_ACTION_PAUSE, c.recv(isFlow).GetFlowControl().GetAction())

		close(h.release)
		answered, resumed := 0, false
		for answered < 2 || !resumed {
			// Times out (waitTimeout) if the answered events still hold
			// the connection paused.
			m := c.recv(nil)
			switch {
			case m.GetResponse() != nil:
				answered++
			case m.GetFlowControl() != nil:
				assert.Equal(t, agentv2.FlowAction_FLOW_ACTION_RESUME, m.GetFlowControl().GetAction())
				resumed = true
			}
		}
		once.Do(func() { close(gate) })
		c.Send(requestHeaders(3, "r3"))
		r := c.response()
		assert.EqualValues(t, 3, r.EventId)
		assert.NotNil(t, r.GetResponse().GetAllow())
	})
}
