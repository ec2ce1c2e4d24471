package caddyagentwire_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
)

// BenchmarkOverhead measures a proxied GET through Caddy's plain
// reverse_proxy and through agentwire (the example WAF agent on a Unix
// socket, request headers and request_complete) in front of the same
// reverse_proxy and upstream. The difference is the module's per-request
// cost, the agent's round trip included.
func BenchmarkOverhead(b *testing.B) {
	w := startWAF(b)
	up := newUpstream(b)
	plain, guarded := freePort(b), freePort(b)
	mustLoad(b, site(plain, "reverse_proxy "+up)+site(guarded, "agentwire waf "+w.endpoint(), "reverse_proxy "+up))
	for _, bc := range []struct {
		name string
		port int
	}{{"reverse_proxy", plain}, {"agentwire", guarded}} {
		url := fmt.Sprintf("http://127.0.0.1:%d/hello", bc.port)
		b.Run(bc.name, func(b *testing.B) {
			c := newClient(b)
			c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
			b.Run("serial", func(b *testing.B) {
				for b.Loop() {
					fetch(b, c, url)
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						fetch(b, c, url)
					}
				})
			})
		})
	}
}

func fetch(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("status %d", resp.StatusCode)
	}
}
