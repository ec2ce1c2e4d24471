package agent

import (
	"context"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

var _ burstStream = (*framedStream)(nil)

// InputBuffered reports whether the next frame has arrived in full already.
func (f *framedStream) InputBuffered() bool { return f.R.FrameBuffered() }

// SendHeld queues m for the next ReleaseHeld.
func (f *framedStream) SendHeld(ctx context.Context, m *agentv2.AgentToProxy) error {
	return f.WriteHeld(ctx, m)
}

// ReleaseHeld writes the held answers with one system call.
func (f *framedStream) ReleaseHeld() error { return f.FrameWriter.ReleaseHeld() }
