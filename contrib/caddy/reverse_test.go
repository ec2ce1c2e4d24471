package caddyagentwire_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
)

// reverseAgent runs the example WAF agent, as agent id, dialling addr
// with token until stop or the test's end; errs gets its failed attempts.
func reverseAgent(t *testing.T, id, addr, token string) (d *agent.ReverseDialer, errs chan error, stop func()) {
	t.Helper()
	srv, err := agent.NewServer(new(waf.Handler), agent.WithAgentID(id), agent.WithLogger(quiet))
	require.NoError(t, err)
	errs = make(chan error, 100)
	d, err = agent.NewReverseDialer(srv, addr, agent.WithAgentToken(token), agent.WithConnections(2),
		agent.WithReconnectBackoff(10*time.Millisecond, 100*time.Millisecond),
		agent.WithDialErrorHandler(func(err error, _ time.Duration) {
			select {
			case errs <- err:
			default:
			}
		}))
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Run(context.Background())
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = d.Close(ctx)
			<-done
			srv.Close()
		})
	}
	t.Cleanup(stop)
	return d, errs, stop
}

// refusal waits for a failed attempt of a dialer.
func refusal(t *testing.T, errs chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no refusal")
		return nil
	}
}

// TestReverseListener: an agent dials Caddy's reverse listener, on a Unix
// socket, with a token from the environment; its decisions apply to
// requests. A wrong token and an id not allowed are refused, the token is
// in neither the adapted config nor the logs, and reloads keep the
// connections or move them to the new pool.
func TestReverseListener(t *testing.T) {
	const token = "rev-s3cret-4f9a1c"
	t.Setenv("AW_REVERSE_TOKEN", token)
	dir, err := os.MkdirTemp("", "aw-rev")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock, logFile := filepath.Join(dir, "rev.sock"), filepath.Join(dir, "caddy.log")
	up := newUpstream(t)
	port, metrics := freePort(t), freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := newClient(t)
	// Everything Caddy logs, at debug level, goes to logFile too.
	debugLog := fmt.Sprintf("log everything {\n\t\toutput file %s {\n\t\t\troll_disabled\n\t\t}\n\t\tlevel DEBUG\n\t}", logFile)
	config := func(maxConns int, tag string) string {
		return site(port, fmt.Sprintf(`agentwire {
		agent waf reverse {
			timeout 2s
		}
		reverse unix://%s {
			token {env.AW_REVERSE_TOKEN}
			max_conns %d
		}
	}`, sock, maxConns), "header X-Config "+tag, "reverse_proxy "+up) + site(metrics, "metrics")
	}

	adapted, err := adaptWith(t, debugLog, config(2, "one"))
	require.NoError(t, err)
	assert.Contains(t, string(adapted), `"tokens":["{env.AW_REVERSE_TOKEN}"]`)
	assert.NotContains(t, string(adapted), token)

	require.NoError(t, loadWith(t, debugLog, config(2, "one")))
	assert.Equal(t, http.StatusServiceUnavailable, get(t, c, base+"/hello").status, "no agent yet: fail closed")

	d, _, stop := reverseAgent(t, "waf", "unix://"+sock, token)
	eventually(t, "the agent's 2 connections", func() bool { return d.Stats().Connected == 2 })
	eventually(t, "the agent's decisions", func() bool { return get(t, c, base+"/admin").status == http.StatusForbidden })
	r := get(t, c, base+"/hello")
	assert.Equal(t, "upstream /hello x-waf=pass\n", r.body)

	_, errs, _ := reverseAgent(t, "waf", "unix://"+sock, "wrong-token")
	err = refusal(t, errs)
	assert.ErrorIs(t, err, agent.ErrRegistrationRejected)
	assert.Equal(t, agentwire.CodeUnauthenticated, agentwire.CodeOf(err), "%v", err)
	_, errs, _ = reverseAgent(t, "intruder", "unix://"+sock, token)
	err = refusal(t, errs)
	assert.Equal(t, agentwire.CodePermissionDenied, agentwire.CodeOf(err), "an id not in the chain: %v", err)
	m := get(t, c, fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics)).body
	assert.Contains(t, m, `caddy_agentwire_agent_connections{agent="waf",endpoint="reverse",state="ready"} 2`)
	assert.Regexp(t, `caddy_agentwire_reverse_registrations_total\{address="unix://[^"]+",result="rejected"\} [1-9]`, m)

	// The same agents: the pool and its listener stay, and so do the
	// connections.
	registered := d.Stats().Registered
	require.NoError(t, loadWith(t, debugLog, config(2, "two")))
	r = afterReload(t, c, base+"/hello", "two")
	assert.Equal(t, "upstream /hello x-waf=pass\n", r.body)
	assert.Equal(t, registered, d.Stats().Registered, "the connections were kept")

	// Another limit: a new pool listens on the same socket, the old one
	// closes its connections, and the agent dials them again.
	require.NoError(t, loadWith(t, debugLog, config(3, "three")))
	afterReload(t, c, base+"/hello", "three")
	eventually(t, "the agent back", func() bool {
		return d.Stats().Registered >= registered+2 && d.Stats().Connected == 2
	})
	eventually(t, "the agent's decisions", func() bool { return get(t, c, base+"/admin").status == http.StatusForbidden })
	assert.Equal(t, "upstream /hello x-waf=pass\n", get(t, c, base+"/hello").body)

	// The agent killed: requests fail closed; another process dials in and
	// they pass again.
	stop()
	eventually(t, "failing closed", func() bool { return get(t, c, base+"/hello").status == http.StatusServiceUnavailable })
	reverseAgent(t, "waf", "unix://"+sock, token)
	eventually(t, "the new agent's decisions", func() bool { return get(t, c, base+"/admin").status == http.StatusForbidden })
	assert.Equal(t, "upstream /hello x-waf=pass\n", get(t, c, base+"/hello").body)

	logs, err := os.ReadFile(logFile)
	require.NoError(t, err)
	assert.Contains(t, string(logs), "reverse connection rejected", "the log has the refusals")
	assert.NotContains(t, string(logs), token)
}

// TestReverseJSON loads a reverse listener on loopback TCP from JSON
// config, with a token from a file, a token of the agent's own and an
// allowlist pattern.
func TestReverseJSON(t *testing.T) {
	t.Setenv("AW_WAF_TOKEN", "waf-token-77")
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("any-token-88\n"), 0o600))
	up := newUpstream(t)
	port, revPort := freePort(t), freePort(t)
	handler := map[string]any{
		"handler": "agentwire",
		"agents":  []map[string]any{{"id": "waf-1", "endpoint": "reverse"}},
		"reverse": map[string]any{
			"address":      fmt.Sprintf("tcp://127.0.0.1:%d", revPort),
			"tokens":       []string{"{file." + tokenFile + "}"},
			"agent_tokens": map[string]string{"waf-1": "{env.AW_WAF_TOKEN}"},
			"allow":        []string{"waf-*"},
			"max_conns":    1,
		},
	}
	loadJSON(t, port, handler, map[string]any{"handler": "reverse_proxy", "upstreams": []map[string]any{{"dial": up}}})
	addr := fmt.Sprintf("tcp://127.0.0.1:%d", revPort)

	// An agent with a token of its own is checked against that one only.
	_, errs, _ := reverseAgent(t, "waf-1", addr, "any-token-88")
	assert.Equal(t, agentwire.CodeUnauthenticated, agentwire.CodeOf(refusal(t, errs)))
	_, errs, _ = reverseAgent(t, "bot", addr, "any-token-88")
	assert.Equal(t, agentwire.CodePermissionDenied, agentwire.CodeOf(refusal(t, errs)), "not allowed")
	other, _, _ := reverseAgent(t, "waf-2", addr, "any-token-88")
	eventually(t, "an allowed id with the file's token", func() bool { return other.Stats().Connected == 1 })
	d, errs, _ := reverseAgent(t, "waf-1", addr, "waf-token-77")
	eventually(t, "a connection", func() bool { return d.Stats().Connected == 1 })
	err := refusal(t, errs)
	assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(err), "max_conns 1: %v", err)

	c := newClient(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	assert.Equal(t, http.StatusForbidden, get(t, c, base+"/admin").status)
	assert.Equal(t, "upstream /hello x-waf=pass\n", get(t, c, base+"/hello").body)
}

// TestReverseAddressShared: handlers with the same agents share one pool
// and one listener; handlers with other agents may not listen on the same
// address, where they would split the agents between two pools.
func TestReverseAddressShared(t *testing.T) {
	t.Setenv("AW_REVERSE_TOKEN", "tok-1")
	dir, err := os.MkdirTemp("", "aw-rev")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	directive := func(id string) string {
		return fmt.Sprintf("agentwire {\n\t\tagent %s reverse\n\t\treverse unix://%s/rev.sock {\n\t\t\ttoken {env.AW_REVERSE_TOKEN}\n\t\t}\n\t}", id, dir)
	}
	require.NoError(t, load(t, site(freePort(t), directive("waf"), "respond ok")+site(freePort(t), directive("waf"), "respond ok")))
	err = load(t, site(freePort(t), directive("waf"), "respond ok")+site(freePort(t), directive("bot"), "respond ok"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "agentwire: reverse unix://"+dir+"/rev.sock: another agentwire handler with other agents listens there")
}

// TestReverseValidateOnly: a config only validated (caddy validate)
// leaves a socket in use at its reverse address alone (a running Caddy's,
// say); the same config loaded listens there.
func TestReverseValidateOnly(t *testing.T) {
	t.Setenv("AW_REVERSE_TOKEN", "tok-1")
	dir, err := os.MkdirTemp("", "aw-rev")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "rev.sock")
	body := site(freePort(t), "agentwire {\n\t\tagent waf reverse\n\t\treverse unix://"+sock+
		" {\n\t\t\ttoken {env.AW_REVERSE_TOKEN}\n\t\t}\n\t}", "respond ok")
	running, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer running.Close()

	adapted, err := adapt(t, body)
	require.NoError(t, err)
	var cfg caddy.Config
	require.NoError(t, json.Unmarshal(adapted, &cfg))
	require.NoError(t, caddy.Validate(&cfg))
	conn, err := net.Dial("unix", sock)
	require.NoError(t, err, "the socket in use is untouched")
	conn.Close()

	running.Close()
	require.NoError(t, load(t, body))
	_, err = os.Stat(sock)
	assert.NoError(t, err, "a loaded config listens")
}
