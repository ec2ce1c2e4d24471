package agent

import (
	"context"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

var _ burstStream = (*framedStream)(nil)

// InputBuffered reports whether the next frame has arrived in full already.
func (f *framedStream) InputBuffered() bool { return f.r.FrameBuffered() }

// SendDeferred queues m for the next Push.
func (f *framedStream) SendDeferred(ctx context.Context, m *agentv2.AgentToProxy) error {
	return f.w.WriteDeferred(ctx, m)
}

// Push writes the queued answers with one system call.
func (f *framedStream) Push() error { return f.w.Push() }
