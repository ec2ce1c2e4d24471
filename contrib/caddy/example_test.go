package caddyagentwire_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loadExample loads a Caddyfile of examples/caddy, on free ports, and
// returns the guarded site's URL.
func loadExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../examples/caddy", name))
	require.NoError(t, err)
	guarded, app := freePort(t), freePort(t)
	cfg := strings.NewReplacer("127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", guarded),
		"127.0.0.1:8081", fmt.Sprintf("127.0.0.1:%d", app)).Replace(string(b))
	mustLoad(t, cfg)
	return fmt.Sprintf("http://127.0.0.1:%d", guarded)
}

// TestExampleCaddyfile runs examples/caddy/Caddyfile with the example WAF
// agent, as cmd/caddy-demo does.
func TestExampleCaddyfile(t *testing.T) {
	w := startWAF(t)
	t.Setenv("AGENTWIRE_WAF_SOCKET", w.path)
	base := loadExample(t, "Caddyfile")
	c := newClient(t)

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

// TestExampleReverseCaddyfile runs examples/caddy/reverse.Caddyfile with
// the example WAF agent dialling in, as cmd/caddy-demo does with
// AGENTWIRE_TOKEN set.
func TestExampleReverseCaddyfile(t *testing.T) {
	dir, err := os.MkdirTemp("", "aw-rev")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "reverse.sock")
	t.Setenv("AGENTWIRE_REVERSE_SOCKET", sock)
	t.Setenv("AGENTWIRE_TOKEN", "demo-token")
	base := loadExample(t, "reverse.Caddyfile")
	reverseAgent(t, "waf-agent", "unix://"+sock, "demo-token")
	c := newClient(t)

	eventually(t, "the agent's decisions", func() bool { return get(t, c, base+"/admin").status == http.StatusForbidden })
	ok := get(t, c, base+"/hello")
	assert.Equal(t, http.StatusOK, ok.status)
	assert.Equal(t, "hello from the upstream, x-waf=pass\n", ok.body)
}
