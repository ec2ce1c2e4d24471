package transport

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// TestPeerTableBounded: a flood of failing addresses never grows the table
// past its bound; addresses whose cooldown ended make room again.
func TestPeerTableBounded(t *testing.T) {
	t.Parallel()
	l, err := NewReverseListener(WithoutAuth(), WithPeerCooldown(1, time.Minute),
		WithAdmitHandler(func(string, Conn, *agentv2.RegistrationRequest) {}))
	require.NoError(t, err)
	now := time.Unix(1_700_000_000, 0)
	l.cfg.now = func() time.Time { return now }
	for i := range 2 * maxCooldownPeers {
		l.peerResult("10.0."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256), false)
	}
	assert.Len(t, l.peers, maxCooldownPeers, "bounded")
	l.mu.Lock()
	assert.Error(t, l.coolingLocked("10.0.0.1", now), "counted peers cool down")
	assert.NoError(t, l.coolingLocked("10.0.31.255", now), "peers past the bound are not counted")
	l.mu.Unlock()

	now = now.Add(2 * time.Minute)
	l.peerResult("192.0.2.1", false)
	assert.Len(t, l.peers, 1, "expired entries were pruned for the new one")
	l.peerResult("192.0.2.1", true)
	assert.Empty(t, l.peers)
}

func TestPeerHost(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "127.0.0.1", peerHost(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}))
	assert.Equal(t, "::1", peerHost(&net.TCPAddr{IP: net.IPv6loopback, Port: 9}))
	assert.Equal(t, "", peerHost(&net.UnixAddr{Name: "/tmp/s", Net: "unix"}))
	assert.Equal(t, "", peerHost(nil))
}
