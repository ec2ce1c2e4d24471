package transport_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/transport"
)

// TestServiceNameOverRPC: over gRPC and Connect, a proxy given an agent's
// service name (Zentinel's) talks to an agent serving it under that name,
// through the generated service code both sides use; the default name is
// not served then, and the handshake fails with the agent's Unimplemented
// in its chain (the session reports the failed handshake as Unavailable).
func TestServiceNameOverRPC(t *testing.T) {
	t.Parallel()
	const name = "zentinel.agent.v2.AgentServiceV2"
	for _, h := range harnesses {
		if h.name != "grpc" && h.name != "connect" {
			continue
		}
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			f := h.setup(t, agent.WithServiceName(name))
			c := dial(t, f, transport.WithServiceName(name))
			resp, err := c.Send(ctxT(t, 5*time.Second), headers("z1", "GET", "/"))
			require.NoError(t, err)
			assert.Equal(t, "z1", resp.GetCorrelationId())

			_, err = f.dial(ctxT(t, 5*time.Second))
			require.Error(t, err)
			assert.True(t, hasCode(err, agentwire.CodeUnimplemented), "%v", err)
		})
	}
}

// hasCode reports whether an *agentwire.Error with code is in err's chain.
func hasCode(err error, code agentwire.Code) bool {
	if e, ok := err.(*agentwire.Error); ok && e.Code() == code {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return hasCode(u.Unwrap(), code)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if hasCode(e, code) {
				return true
			}
		}
	}
	return false
}
