package transport

import (
	"net"
	"time"

	"github.com/agentwire/agentwire"
)

// maxCooldownPeers bounds the peers a listener remembers failures of;
// past it, new peers are not counted until old entries expire.
const maxCooldownPeers = 4096

// WithPeerCooldown refuses connections from an IP address for cooldown
// once n registrations from it failed in a row (rejected, malformed, timed
// out or failing the handshake), bounding what one hostile client makes
// the proxy spend. An admitted registration clears the count; a refusal
// for a connection limit does neither. Refused connections are closed at
// once and reported as ResourceExhausted. Unix-socket peers are never
// refused. Off by default: agents behind one NAT address share a count.
func WithPeerCooldown(n int, cooldown time.Duration) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) { c.peerFailures, c.peerCooldown = n, cooldown })
}

// peerRecord is what a listener remembers of one peer address.
type peerRecord struct {
	fails int       // consecutive failed registrations
	until time.Time // refused until then, once fails reached the limit
}

// peerHost is the address a peer is counted under: its IP, or "" for
// peers that are not counted (Unix sockets).
func peerHost(a net.Addr) string {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case nil:
		return ""
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return ""
}

// coolingLocked reports why host is refused now, or nil; l.mu is held.
func (l *ReverseListener) coolingLocked(host string, now time.Time) error {
	if l.cfg.peerFailures <= 0 || host == "" {
		return nil
	}
	r := l.peers[host]
	if r == nil || r.fails < l.cfg.peerFailures {
		return nil
	}
	if now.Before(r.until) {
		return agentwire.Errorf(agentwire.CodeResourceExhausted,
			"peer %s refused until %s after %d failed registrations in a row", host, r.until.Format(time.RFC3339), r.fails)
	}
	// The cooldown is over: one more failure starts another.
	r.fails = l.cfg.peerFailures - 1
	return nil
}

// peerResult records how a registration from host ended.
func (l *ReverseListener) peerResult(host string, ok bool) {
	if l.cfg.peerFailures <= 0 || host == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok {
		delete(l.peers, host)
		return
	}
	r := l.peers[host]
	if r == nil {
		if len(l.peers) >= maxCooldownPeers && !l.prunePeersLocked() {
			return
		}
		r = &peerRecord{}
		l.peers[host] = r
	}
	r.fails++
	if r.fails >= l.cfg.peerFailures {
		r.until = l.cfg.now().Add(l.cfg.peerCooldown)
	}
}

// prunePeersLocked forgets peers that are not cooling down, at most once a
// second, and reports whether there is room now.
func (l *ReverseListener) prunePeersLocked() bool {
	now := l.cfg.now()
	if now.Sub(l.peersPruned) < time.Second {
		return false
	}
	l.peersPruned = now
	for host, r := range l.peers {
		if r.fails < l.cfg.peerFailures || !now.Before(r.until) {
			delete(l.peers, host)
		}
	}
	return len(l.peers) < maxCooldownPeers
}
