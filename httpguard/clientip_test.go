package httpguard_test

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/httpguard"
)

// TestContextClientIP: a client address in the request's context is what
// agents get, ahead of the guard's own trusted proxies; the port is kept
// only when it is the connection's address.
func TestContextClientIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, ip, want string
		port           bool
	}{
		{"forwarded", "203.0.113.7", "203.0.113.7", false},
		{"the peer", "127.0.0.1", "127.0.0.1", true},
		{"mapped peer", "::ffff:127.0.0.1", "127.0.0.1", true},
		{"none: the guard's trusted proxies apply", "", "198.51.100.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &script{}
			p := newPool(t, map[string]string{"a": startUnix(t, s)})
			// The guard trusts the peer: without a context address, it would
			// report X-Forwarded-For's.
			g := newGuard(t, p, httpguard.WithTrustedProxies(netip.MustParsePrefix("127.0.0.0/8")),
				httpguard.WithRoute("/", httpguard.WithAgent("a")))
			h := g.Middleware(http.NotFoundHandler())
			if tc.ip != "" {
				next := h
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					ctx := httpguard.ContextWithClientIP(r.Context(), netip.MustParseAddr(tc.ip))
					next.ServeHTTP(w, r.WithContext(ctx))
				})
			}
			do(t, newClient(t), "GET", serve(t, h)+"/", nil, "X-Forwarded-For", "198.51.100.1")
			s.mu.Lock()
			defer s.mu.Unlock()
			require.Len(t, s.seen, 1)
			md := s.seen[0].GetMetadata()
			assert.Equal(t, tc.want, md.GetClientIp())
			assert.Equal(t, tc.port, md.GetClientPort() != 0, "port %d", md.GetClientPort())
		})
	}
}
