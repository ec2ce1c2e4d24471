package httpguard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	"github.com/agentwire/agentwire/httpguard"
)

// TestHTTP2Concurrent runs concurrent requests with bodies both ways over
// HTTP/2, where the reverse proxy reads the request body on its
// transport's goroutine while response events go out on the handler's.
func TestHTTP2Concurrent(t *testing.T) {
	t.Parallel()
	p := newPool(t, map[string]string{"waf": startUnix(t, &waf.Handler{})})
	g := newGuard(t, p, httpguard.WithChunkSize(1024), httpguard.WithRoute("/", httpguard.WithAgent("waf",
		httpguard.WithEvents(httpguard.RequestBody|httpguard.ResponseHeaders|httpguard.ResponseBody|httpguard.RequestComplete))))
	up := newUpstream(t)
	target, err := url.Parse(up.URL)
	require.NoError(t, err)
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ErrorHandler: httpguard.ProxyErrorHandler}
	srv := httptest.NewUnstartedServer(g.Middleware(rp))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := srv.Client()
	t.Cleanup(c.CloseIdleConnections)

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := strings.Repeat(fmt.Sprint(i%10), 5000)
			want := http.StatusOK
			if i%4 == 0 {
				body += "<script>"
				want = http.StatusForbidden
			}
			res, err := c.Post(srv.URL+"/up", "text/plain", strings.NewReader(body))
			if !assert.NoError(t, err) {
				return
			}
			defer res.Body.Close()
			assert.Equal(t, "HTTP/2.0", res.Proto)
			assert.Equal(t, want, res.StatusCode, "request %d", i)
		}()
	}
	wg.Wait()
}
