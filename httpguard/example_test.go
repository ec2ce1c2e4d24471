package httpguard_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	"github.com/agentwire/agentwire/httpguard"
	"github.com/agentwire/agentwire/pool"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "hg")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// An agent on a Unix socket (normally another process): the example WAF.
	srv, err := agent.NewServer(&waf.Handler{}, agent.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	ln, err := srv.ListenUnix(filepath.Join(dir, "waf.sock"))
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.ServeUnix(ctx, ln) }()
	defer func() { srv.Close(); <-served }()

	p, err := pool.New()
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	if err := p.AddAgent(ctx, "waf", "unix://"+filepath.Join(dir, "waf.sock")); err != nil {
		log.Fatal(err)
	}

	// The guard: one route, one agent that also reads request bodies and
	// lets requests through when it is down.
	g, err := httpguard.New(p, httpguard.WithLogger(slog.New(slog.DiscardHandler)),
		httpguard.WithRoute("/", httpguard.WithAgent("waf",
			httpguard.WithEvents(httpguard.RequestBody|httpguard.RequestComplete),
			httpguard.WithTimeout(100*time.Millisecond), httpguard.FailOpen())))
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close(ctx)

	// In front of a reverse proxy to an upstream.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream saw x-waf: %s", r.Header.Get("X-Waf"))
	}))
	defer upstream.Close()
	target, _ := url.Parse(upstream.URL)
	proxy := &httputil.ReverseProxy{
		Rewrite:      func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ErrorHandler: httpguard.ProxyErrorHandler,
	}
	front := httptest.NewServer(g.Middleware(proxy))
	defer front.Close()

	for _, path := range []string{"/hello", "/admin"} {
		res, err := http.Get(front.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Printf("%s: %d %s\n", path, res.StatusCode, body)
	}
	http.DefaultClient.CloseIdleConnections()
	// Output:
	// /hello: 200 upstream saw x-waf: pass
	// /admin: 403 forbidden
}
