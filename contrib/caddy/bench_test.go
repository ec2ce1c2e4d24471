package caddyagentwire_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkOverhead measures a proxied GET through Caddy's plain
// reverse_proxy and through agentwire (the example WAF agent on a Unix
// socket, request headers and request_complete) in front of the same
// reverse_proxy and upstream; the difference is the module's per-request
// cost, the agent's round trip included. "paired" alternates the two, one
// request each per iteration, so that a load that drifts hits both alike;
// "parallel" measures each under concurrent clients.
func BenchmarkOverhead(b *testing.B) {
	w := startWAF(b)
	up := newUpstream(b)
	plainPort, guardedPort := freePort(b), freePort(b)
	mustLoad(b, site(plainPort, "reverse_proxy "+up)+site(guardedPort, "agentwire waf "+w.endpoint(), "reverse_proxy "+up))
	plain := fmt.Sprintf("http://127.0.0.1:%d/hello", plainPort)
	guarded := fmt.Sprintf("http://127.0.0.1:%d/hello", guardedPort)
	c := newClient(b)
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64

	b.Run("paired", func(b *testing.B) {
		var plainT, guardedT time.Duration
		for b.Loop() {
			t0 := time.Now()
			fetch(b, c, plain)
			t1 := time.Now()
			fetch(b, c, guarded)
			plainT, guardedT = plainT+t1.Sub(t0), guardedT+time.Since(t1)
		}
		n := float64(b.N)
		b.ReportMetric(float64(plainT.Microseconds())/n, "reverse_proxy-µs/req")
		b.ReportMetric(float64(guardedT.Microseconds())/n, "agentwire-µs/req")
		b.ReportMetric(float64((guardedT-plainT).Microseconds())/n, "overhead-µs/req")
	})
	for _, bc := range []struct{ name, url string }{{"reverse_proxy", plain}, {"agentwire", guarded}} {
		b.Run("parallel/"+bc.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					fetch(b, c, bc.url)
				}
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
