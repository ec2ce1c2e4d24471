package caddyagentwire_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestWAFBehindCaddy puts the example WAF agent, on a Unix socket, in
// front of reverse_proxy: blocked, redirected, and allowed with request
// and response header mutations.
func TestWAFBehindCaddy(t *testing.T) {
	w := startWAF(t)
	up := newUpstream(t)
	port := freePort(t)
	mustLoad(t, site(port, fmt.Sprintf(`agentwire {
		agent waf %s {
			events response_headers request_complete
			timeout 2s
		}
	}`, w.endpoint()), "reverse_proxy "+up))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := newClient(t)

	admin := get(t, c, base+"/admin")
	assert.Equal(t, http.StatusForbidden, admin.status)
	assert.Equal(t, "forbidden\n", admin.body)

	old := get(t, c, base+"/old-login")
	assert.Equal(t, http.StatusMovedPermanently, old.status)
	assert.Equal(t, "/login", old.header.Get("Location"))

	ok := get(t, c, base+"/hello")
	assert.Equal(t, http.StatusOK, ok.status)
	assert.Equal(t, "upstream /hello x-waf=pass\n", ok.body, "the request mutation reaches the upstream")
	assert.Equal(t, "agentwire", ok.header.Get("X-Waf-Agent"), "the response mutation reaches the client")
}

// TestUpstreamDown answers reverse_proxy's error inside the guard: the
// client gets its status.
func TestUpstreamDown(t *testing.T) {
	w := startWAF(t)
	port := freePort(t)
	mustLoad(t, site(port, "agentwire waf "+w.endpoint(), fmt.Sprintf("reverse_proxy 127.0.0.1:%d", freePort(t))))
	c := newClient(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	assert.Equal(t, http.StatusBadGateway, get(t, c, base+"/hello").status)
	assert.Equal(t, http.StatusForbidden, get(t, c, base+"/admin").status, "the agent still answers first")
}

// TestMetrics reads the pool's and the guard's figures from Caddy's
// metrics handler.
func TestMetrics(t *testing.T) {
	w := startWAF(t)
	up := newUpstream(t)
	port, metrics := freePort(t), freePort(t)
	directive := "agentwire {\n\t\tagent waf " + w.endpoint() + " {\n\t\t\tconnections 1\n\t\t}\n\t}"
	mustLoad(t, site(port, directive, "reverse_proxy "+up)+
		site(freePort(t), directive, "reverse_proxy "+up)+site(metrics, "metrics"))
	c := newClient(t)
	for range 3 {
		assert.Equal(t, http.StatusForbidden, get(t, c, fmt.Sprintf("http://127.0.0.1:%d/admin", port)).status)
	}
	m := get(t, c, fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics))
	assert.Equal(t, http.StatusOK, m.status)
	series := fmt.Sprintf(`{agent="waf",endpoint="%s"`, w.endpoint())
	assert.Contains(t, m.body, "caddy_agentwire_agent_events_total"+series+"} 3\n", "the shared pool, counted once")
	assert.Contains(t, m.body, "caddy_agentwire_agent_connections"+series+`,state="ready"} 1`)
	assert.Contains(t, m.body, `caddy_agentwire_failures_total{agent="waf",mode="closed",route="caddy"} 0`)
}
