package caddyagentwire_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBadCaddyfiles checks that bad configs are refused, when adapted or
// when loaded, with a message that names the directive and what is wrong.
func TestBadCaddyfiles(t *testing.T) {
	w := startWAF(t)
	ep := w.endpoint()
	t.Setenv("AW_UNSET_TOKEN", "")
	t.Setenv("AW_TOKEN", "tok")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	for _, tc := range []struct {
		name, directive, want string
	}{
		{"no endpoint", "agentwire waf", `agentwire: agent "waf" needs an endpoint`},
		{"extra argument", "agentwire waf " + ep + " more", "wrong argument count"},
		{"agent without endpoint", "agentwire {\n\t\tagent waf\n\t}",
			"agentwire: agent: want <id> <endpoint>, got 1 arguments"},
		{"no agents", "agentwire {\n\t\troute_id x\n\t}", "agentwire: no agents"},
		{"bad scheme", "agentwire waf tcp://127.0.0.1:1",
			`agentwire: agent "waf": endpoint "tcp://127.0.0.1:1": want unix://, grpc://, grpcs://, http://, https://, dns:/// or reverse, at Caddyfile:`},
		{"unknown event", "agentwire {\n\t\tagent waf " + ep + " {\n\t\t\tevents request_bodies\n\t\t}\n\t}",
			`agentwire: agent "waf": unknown event "request_bodies"`},
		{"bad fail", "agentwire {\n\t\tagent waf " + ep + " {\n\t\t\tfail sometimes\n\t\t}\n\t}",
			"agentwire: fail: want open or closed [<status>]"},
		{"bad fail status", "agentwire {\n\t\tagent waf " + ep + " {\n\t\t\tfail closed 999\n\t\t}\n\t}",
			`agentwire: agent "waf": fail status 999: want 100 to 599`},
		{"bad duration", "agentwire {\n\t\tagent waf " + ep + " {\n\t\t\ttimeout soon\n\t\t}\n\t}",
			`agentwire: bad duration "soon"`},
		{"unknown subdirective", "agentwire {\n\t\tagent waf " + ep + " {\n\t\t\tcolour blue\n\t\t}\n\t}",
			`agentwire: agent "waf": unknown subdirective "colour"`},
		{"listed twice", "agentwire {\n\t\tagent waf " + ep + "\n\t\tagent waf " + ep + "\n\t}",
			`agentwire: agent "waf" listed twice`},
		{"tls on unix", "agentwire {\n\t\tagent waf " + ep + " {\n\t\t\ttls {\n\t\t\t\tinsecure_skip_verify\n\t\t\t}\n\t\t}\n\t}",
			`agentwire: agent "waf": tls on a unix:// endpoint`},
		{"unreachable", "agentwire waf unix:///nonexistent/waf.sock", `agent "waf": unavailable: dial /nonexistent/waf.sock`},
		{"reverse agent without listener", "agentwire waf reverse",
			`agentwire: agent "waf": endpoint reverse needs a reverse listener, at Caddyfile:`},
		{"reverse agent with connections", "agentwire {\n\t\tagent waf reverse {\n\t\t\tconnections 2\n\t\t}\n\t\t" +
			"reverse unix:///tmp/aw.sock {\n\t\t\ttoken {env.AW_TOKEN}\n\t\t}\n\t}",
			`agentwire: agent "waf": connections, dial_timeout, handshake_timeout or tls on a reverse agent (it dials in)`},
		{"literal token", "agentwire {\n\t\tagent waf reverse\n\t\treverse unix:///tmp/aw.sock {\n\t\t\ttoken s3cret\n\t\t}\n\t}",
			"agentwire: reverse: token: want a placeholder such as {env.AGENTWIRE_TOKEN}, not the token itself"},
		{"no token", "agentwire {\n\t\tagent waf reverse\n\t\treverse unix:///tmp/aw.sock\n\t}",
			"agentwire: reverse: no token: set token or agent_token"},
		{"reverse on a public address", "agentwire {\n\t\tagent waf reverse\n\t\treverse tcp://0.0.0.0:9444 {\n\t\t\ttoken {env.AW_TOKEN}\n\t\t}\n\t}",
			`agentwire: reverse: address "tcp://0.0.0.0:9444": want tcp://<loopback IP>:<port> (tokens are sent in the clear)`},
		{"unknown reverse subdirective", "agentwire {\n\t\tagent waf reverse\n\t\treverse unix:///tmp/aw.sock {\n\t\t\tcolour blue\n\t\t}\n\t}",
			`agentwire: reverse: unknown subdirective "colour"`},
		{"empty token", "agentwire {\n\t\tagent waf reverse\n\t\treverse unix:///tmp/aw.sock {\n\t\t\ttoken {env.AW_UNSET_TOKEN}\n\t\t}\n\t}",
			"agentwire: reverse: token {env.AW_UNSET_TOKEN} is empty"},
		{"reverse address in use", "agentwire {\n\t\tagent waf reverse\n\t\treverse tcp://" + busy.Addr().String() +
			" {\n\t\t\ttoken {env.AW_TOKEN}\n\t\t}\n\t}",
			"agentwire app module: start: agentwire: reverse: listen tcp://" + busy.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := load(t, site(freePort(t), tc.directive, "respond ok"))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestJSONConfig loads the handler from JSON config, as the admin API
// would get it.
func TestJSONConfig(t *testing.T) {
	w := startWAF(t)
	up := newUpstream(t)
	port := freePort(t)
	handler := map[string]any{
		"handler": "agentwire",
		"agents": []map[string]any{{
			"id": "waf", "endpoint": w.endpoint(), "connections": 1, "timeout": "500ms",
			"events": []string{"request_body", "request_complete"}, "fail_status": 502, "max_body_bytes": 4096,
		}},
		"route_id": "json",
	}
	loadJSON(t, port, handler, map[string]any{"handler": "reverse_proxy", "upstreams": []map[string]any{{"dial": up}}})
	c := newClient(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	assert.Equal(t, http.StatusForbidden, get(t, c, base+"/admin").status)
	assert.Equal(t, "upstream /hello x-waf=pass\n", get(t, c, base+"/hello").body)
	resp, err := c.Post(base+"/form", "text/plain", stringsReader("<script>alert(1)</script>"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "request_body reaches the agent")
}

// loadJSON runs a JSON config of one server on 127.0.0.1:port whose one
// route has handlers.
func loadJSON(t *testing.T, port int, handlers ...map[string]any) {
	t.Helper()
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"s": map[string]any{
			"listen":          []string{fmt.Sprintf("127.0.0.1:%d", port)},
			"automatic_https": map[string]any{"disable": true},
			"routes":          []map[string]any{{"handle": handlers}},
		}}}},
	}
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = caddy.Stop() })
	require.NoError(t, caddy.Load(raw, true))
}
