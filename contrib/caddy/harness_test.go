package caddyagentwire_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard" // Caddy as users run it
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"

	_ "github.com/agentwire/agentwire/contrib/caddy"
)

var quiet = slog.New(slog.DiscardHandler)

// globals keeps the in-process Caddy off the admin port, the user's
// config and data directories and the system trust store; extra are more
// global options.
func globals(storage, extra string) string {
	return fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	skip_install_trust
	storage file_system %s
	grace_period 1s
	log {
		level ERROR
	}
	%s
}
`, storage, extra)
}

// adapt turns a Caddyfile (after the global options) into JSON config.
func adapt(t testing.TB, body string) ([]byte, error) { return adaptWith(t, "", body) }

// adaptWith is adapt with more global options.
func adaptWith(t testing.TB, extra, body string) ([]byte, error) {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(globals(t.TempDir(), extra)+body),
		map[string]any{"filename": "Caddyfile"})
	return cfg, err
}

// load adapts a Caddyfile and makes it the running config; the test's end
// stops Caddy. Caddy is one per process: tests that load configs do not
// run in parallel.
func load(t testing.TB, body string) error { return loadWith(t, "", body) }

// loadWith is load with more global options.
func loadWith(t testing.TB, extra, body string) error {
	t.Helper()
	cfg, err := adaptWith(t, extra, body)
	if err != nil {
		return err
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return caddy.Load(cfg, true)
}

// mustLoad is load that fails the test on an error.
func mustLoad(t testing.TB, body string) {
	t.Helper()
	require.NoError(t, load(t, body))
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newUpstream is the proxied application: it echoes the x-waf header the
// agent set on the request, then the headers named in show, a line each.
func newUpstream(t testing.TB, show ...string) string {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream %s x-waf=%s\n", r.URL.Path, r.Header.Get("X-Waf"))
		for _, h := range show {
			fmt.Fprintln(w, r.Header.Get(h))
		}
	}))
	t.Cleanup(up.Close)
	return up.Listener.Addr().String()
}

// wafAgent is an agent (the example WAF unless told) served in-process
// on a Unix socket; it can be stopped and started again on the same path.
type wafAgent struct {
	t        testing.TB
	h        agent.Handler
	path     string
	accepted atomic.Int64 // connections accepted, over every start
	srv      *agent.Server
	done     chan struct{}
}

func startWAF(t testing.TB) *wafAgent { return startAgent(t, new(waf.Handler)) }

// serveAgent serves h and returns its endpoint.
func serveAgent(t testing.TB, h agent.Handler) string { return startAgent(t, h).endpoint() }

func startAgent(t testing.TB, h agent.Handler) *wafAgent {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw-caddy")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	w := &wafAgent{t: t, h: h, path: filepath.Join(dir, "agent.sock")}
	w.start()
	t.Cleanup(w.stop)
	return w
}

// endpoint is the agent's unix:// endpoint.
func (w *wafAgent) endpoint() string { return "unix://" + w.path }

func (w *wafAgent) start() {
	srv, err := agent.NewServer(w.h, agent.WithLogger(quiet))
	require.NoError(w.t, err)
	ln, err := srv.ListenUnix(w.path)
	require.NoError(w.t, err)
	w.srv, w.done = srv, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		_ = srv.ServeUnix(context.Background(), &countingListener{Listener: ln, n: &w.accepted})
	}(w.done)
}

// stop kills the agent: its listener and connections close at once.
func (w *wafAgent) stop() {
	if w.srv == nil {
		return
	}
	w.srv.Close()
	<-w.done
	w.srv = nil
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// response is what a test request got.
type response struct {
	status int
	header http.Header
	body   string
}

// client does not follow redirects and keeps no connection between tests.
func newClient(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t testing.TB, c *http.Client, url string) response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	return do(t, c, req)
}

func do(t testing.TB, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// afterReload gets url until the config tagged tag (its X-Config header)
// answers, and returns that response. On Linux Caddy binds a new config's
// socket beside the old one (SO_REUSEPORT) and then closes the old one,
// which resets the connections the kernel had queued on it: a request
// sent during the handover may read EOF. That is Caddy's reload, not
// agentwire's, so requests right after a reload wait it out.
func afterReload(t testing.TB, c *http.Client, url, tag string) response {
	t.Helper()
	var r response
	eventually(t, "config "+tag+" serving", func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return false
		}
		r = response{status: resp.StatusCode, header: resp.Header, body: string(b)}
		return resp.Header.Get("X-Config") == tag
	})
	return r
}

// eventually polls f until it returns true or 15 s pass.
func eventually(t testing.TB, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// site is a Caddyfile site on 127.0.0.1:port with the directives of body.
func site(port int, body ...string) string {
	return fmt.Sprintf("http://127.0.0.1:%d {\n\t%s\n}\n", port, strings.Join(body, "\n\t"))
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
