package caddyagentwire_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReloadKeepsConnections reloads Caddy: a config with the same agents
// keeps the pool and its connections, one whose agents changed dials anew.
func TestReloadKeepsConnections(t *testing.T) {
	w := startWAF(t)
	up := newUpstream(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := newClient(t)
	config := func(conns int, tag string) string {
		return site(port, fmt.Sprintf("agentwire {\n\t\tagent waf %s {\n\t\t\tconnections %d\n\t\t}\n\t}", w.endpoint(), conns),
			"header X-Config "+tag, "reverse_proxy "+up)
	}
	mustLoad(t, config(2, "one"))
	eventually(t, "2 connections", func() bool { return w.accepted.Load() == 2 })
	r := get(t, c, base+"/hello")
	assert.Equal(t, "one", r.header.Get("X-Config"))
	assert.Equal(t, "upstream /hello x-waf=pass\n", r.body)

	mustLoad(t, config(2, "two"))
	r = afterReload(t, c, base+"/hello", "two") // the new config serves
	assert.Equal(t, "upstream /hello x-waf=pass\n", r.body)
	assert.Equal(t, http.StatusForbidden, get(t, c, base+"/admin").status)
	time.Sleep(200 * time.Millisecond)
	assert.EqualValues(t, 2, w.accepted.Load(), "same agents: the connections were kept")

	mustLoad(t, config(3, "three"))
	eventually(t, "3 new connections", func() bool { return w.accepted.Load() == 5 })
	r = afterReload(t, c, base+"/hello", "three")
	assert.Equal(t, "upstream /hello x-waf=pass\n", r.body)
}

// TestAgentRestart kills the agent: requests fail closed (503), then pass
// again once it is back and the pool has redialled it.
func TestAgentRestart(t *testing.T) {
	w := startWAF(t)
	up := newUpstream(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := newClient(t)
	mustLoad(t, site(port, "agentwire waf "+w.endpoint(), "reverse_proxy "+up))
	require.Equal(t, http.StatusOK, get(t, c, base+"/hello").status)

	w.stop()
	eventually(t, "failing closed", func() bool { return get(t, c, base+"/hello").status == http.StatusServiceUnavailable })
	for range 3 {
		r := get(t, c, base+"/hello")
		assert.Equal(t, http.StatusServiceUnavailable, r.status, "an agent down fails closed")
	}

	w.start()
	eventually(t, "recovery", func() bool { return get(t, c, base+"/hello").status == http.StatusOK })
	assert.Equal(t, "upstream /hello x-waf=pass\n", get(t, c, base+"/hello").body)
	assert.Equal(t, http.StatusForbidden, get(t, c, base+"/admin").status)
}

// TestSharedPool gives two sites the same agent: one pool serves both, and
// a second agentwire handler with other agents gets its own.
func TestSharedPool(t *testing.T) {
	w := startWAF(t)
	up := newUpstream(t)
	p1, p2 := freePort(t), freePort(t)
	agents := fmt.Sprintf("agentwire {\n\t\tagent waf %s {\n\t\t\tconnections 1\n\t\t}\n\t}", w.endpoint())
	mustLoad(t, site(p1, agents, "reverse_proxy "+up)+site(p2, agents, "reverse_proxy "+up))
	c := newClient(t)
	for _, p := range []int{p1, p2} {
		assert.Equal(t, http.StatusForbidden, get(t, c, fmt.Sprintf("http://127.0.0.1:%d/admin", p)).status)
	}
	time.Sleep(200 * time.Millisecond)
	assert.EqualValues(t, 1, w.accepted.Load(), "one pool, one connection, for both sites")
}
