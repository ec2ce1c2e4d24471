package caddyagentwire_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// clientAgent allows everything and sends the client address it got back
// in a request header, for the upstream to show.
type clientAgent struct{ agent.Base }

func (clientAgent) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	md := ev.GetMetadata()
	return agent.AllowSetRequestHeader("x-agent-client", fmt.Sprintf("%s port=%t", md.GetClientIp(), md.GetClientPort() != 0)), nil
}

// TestTrustedProxies: agents get the client address Caddy resolved with
// its servers' trusted_proxies: the forwarded one from a trusted proxy,
// the connection's otherwise.
func TestTrustedProxies(t *testing.T) {
	ep := serveAgent(t, clientAgent{})
	up := newUpstream(t, "X-Agent-Client")
	for _, tc := range []struct {
		name, global, want string
	}{
		{"trusted", "servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}", "203.0.113.7 port=false"},
		{"untrusted", "servers {\n\t\ttrusted_proxies static 10.0.0.0/8\n\t}", "127.0.0.1 port=true"},
		{"none", "", "127.0.0.1 port=true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			require.NoError(t, loadWith(t, tc.global, site(port, "agentwire client "+ep, "reverse_proxy "+up)))
			req, err := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/hello", port), nil)
			require.NoError(t, err)
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			r := do(t, newClient(t), req)
			assert.Equal(t, http.StatusOK, r.status)
			assert.Equal(t, "upstream /hello x-waf=\n"+tc.want+"\n", r.body)
		})
	}
}
