package caddyagentwire_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExampleCaddyfile runs examples/caddy/Caddyfile, on free ports, with
// the example WAF agent, as cmd/caddy-demo does.
func TestExampleCaddyfile(t *testing.T) {
	b, err := os.ReadFile("../../examples/caddy/Caddyfile")
	require.NoError(t, err)
	w := startWAF(t)
	t.Setenv("AGENTWIRE_WAF_SOCKET", w.path)
	guarded, app := freePort(t), freePort(t)
	cfg := strings.NewReplacer("127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", guarded),
		"127.0.0.1:8081", fmt.Sprintf("127.0.0.1:%d", app)).Replace(string(b))
	mustLoad(t, cfg)
	c := newClient(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", guarded)

	admin := get(t, c, base+"/admin")
	assert.Equal(t, http.StatusForbidden, admin.status)
	assert.Equal(t, "forbidden\n", admin.body)
	old := get(t, c, base+"/old-login")
	assert.Equal(t, http.StatusMovedPermanently, old.status)
	assert.Equal(t, "/login", old.header.Get("Location"))
	ok := get(t, c, base+"/hello")
	assert.Equal(t, http.StatusOK, ok.status)
	assert.Equal(t, "hello from the upstream, x-waf=pass\n", ok.body)
	assert.Equal(t, "agentwire", ok.header.Get("X-Waf-Agent"))
}
