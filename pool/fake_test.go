package pool

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// memConn is a trivial in-memory transport.Conn for picker unit tests and
// the hot-path benchmark: it answers every event at once with the same
// response and never pauses. Behaviour tests use real agents instead.
type memConn struct {
	resp *agentv2.AgentResponse
	caps *agentv2.AgentCapabilities
	done chan struct{}
	// gathering is what Gathering reports, for picker tests.
	gathering atomic.Bool

	mu     sync.Mutex
	status transport.Status
	closed bool
}

var _ transport.Conn = (*memConn)(nil)

func newMemConn() *memConn {
	return &memConn{
		resp:   &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}},
		caps:   &agentv2.AgentCapabilities{ProtocolVersion: 2},
		done:   make(chan struct{}),
		status: transport.Status{State: transport.StateReady},
	}
}

func (c *memConn) Send(context.Context, *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	return c.resp, nil
}
func (c *memConn) Cancel(context.Context, *agentv2.CancelRequest) error { return nil }
func (c *memConn) Notify(context.Context, *agentv2.ProxyToAgent) error  { return nil }
func (c *memConn) Ping(context.Context) (time.Duration, error)          { return 0, nil }
func (c *memConn) Capabilities() *agentv2.AgentCapabilities             { return c.caps }
func (c *memConn) Paused(string) bool                                   { return false }
func (c *memConn) Gathering() bool                                      { return c.gathering.Load() }
func (c *memConn) WaitResume(context.Context, string) error             { return nil }
func (c *memConn) Done() <-chan struct{}                                { return c.done }
func (c *memConn) Err() error                                           { return nil }

func (c *memConn) Status() transport.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *memConn) setStatus(st transport.Status) {
	c.mu.Lock()
	c.status = st
	c.mu.Unlock()
}

func (c *memConn) Close(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.status.State = transport.StateClosed
		close(c.done)
	}
	return nil
}
