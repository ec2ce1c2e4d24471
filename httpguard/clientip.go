package httpguard

import (
	"context"
	"net/http"
	"net/netip"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

type clientIPKey struct{}

// ContextWithClientIP returns ctx carrying the client's address as the
// server in front of the guard resolved it (a web server that applies its
// own trusted proxies, say). A request whose context carries one reports
// it to agents, instead of the connection's address or what
// [WithTrustedProxies] finds.
func ContextWithClientIP(ctx context.Context, ip netip.Addr) context.Context {
	return context.WithValue(ctx, clientIPKey{}, ip.Unmap())
}

// setClientIP sets md's client address from r's context, if it carries
// one, and reports whether it did. The port is the connection's when the
// address is the connection's, otherwise unknown (0).
func setClientIP(r *http.Request, md *agentv2.RequestMetadata) bool {
	ip, ok := r.Context().Value(clientIPKey{}).(netip.Addr)
	if !ok || !ip.IsValid() {
		return false
	}
	if peer, ok := peerIP(r); !ok || peer != ip {
		md.ClientPort = 0
	}
	md.ClientIp = ip.String()
	return true
}

// peerIP is the address of r's connection.
func peerIP(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}
