package transport_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

var errFull = errors.New("full")

// capAdmission admits up to max connections, as a pool does with its
// reverse-connection limit; the test frees the slot of an admitted one.
type capAdmission struct {
	admitted chan transport.Conn

	mu       sync.Mutex // mu guards the following
	max      int
	held     int // reserved or admitted
	released int
}

func (a *capAdmission) admit(agentID string, _ *agentv2.RegistrationRequest) (func(transport.Conn), func(), error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.held >= a.max {
		return nil, nil, agentwire.Errorf(agentwire.CodeResourceExhausted, "%w: %q holds %d", errFull, agentID, a.max)
	}
	a.held++
	release := func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.held--
		a.released++
	}
	return func(c transport.Conn) { a.admitted <- c }, release, nil
}

func (a *capAdmission) counts() (held, released int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.held, a.released
}

// TestReverseAdmission: with WithAdmission, the admission's limit is
// checked at registration, after authentication; the agent is told its
// code and reason; capacity refusals are not held against the peer's
// address; a slot reserved for a connection that never gets admitted is
// released, and an admitted one is the admission's.
func TestReverseAdmission(t *testing.T) {
	t.Parallel()
	adm := &capAdmission{max: 1, admitted: make(chan transport.Conn, 4)}
	rl := &revListener{network: "tcp", rejected: make(chan rejectedConn, 64)}
	l, err := transport.NewReverseListener(
		transport.WithAdmission(adm.admit),
		transport.WithGlobalToken("t"),
		transport.WithCloseConnsOnClose(),
		transport.WithPeerCooldown(2, time.Minute),
		transport.WithRejectHandler(func(peer net.Addr, id string, err error) {
			rl.rejected <- rejectedConn{peer, id, err}
		}))
	require.NoError(t, err)
	rl.ReverseListener = l
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, l.Close(ctx))
	})
	rl.addr = strings.TrimPrefix(listenReverse(t, l, "tcp"), "tcp://")
	admitted := func() transport.Conn {
		t.Helper()
		select {
		case c := <-adm.admitted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no connection admitted")
		}
		return nil
	}
	register := func() {
		t.Helper()
		a := dialRaw(t, rl)
		a.register(t, reg("waf", "t"))
		require.True(t, a.answer(t).GetAccepted())
		a.handshake(t, "waf")
	}

	register()
	first := admitted()

	// Over the limit: refused before the handshake, with the admission's
	// code and reason; three in a row do not cool the address down.
	for range 3 {
		over := dialRaw(t, rl)
		over.register(t, reg("waf", "t"))
		resp := over.answer(t)
		assert.False(t, resp.GetAccepted())
		assert.Equal(t, uint32(agentwire.CodeResourceExhausted), resp.GetCode())
		assert.Equal(t, `resource_exhausted: full: "waf" holds 1`, resp.GetError())
		over.closedWithin(t, 2*time.Second)
		rej := rl.nextRejected(t)
		assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(rej.err))
		assert.ErrorIs(t, rej.err, errFull)
	}
	// Authentication comes first.
	bad := dialRaw(t, rl)
	bad.register(t, reg("waf", "x"))
	assert.Contains(t, bad.answer(t).GetError(), "unauthenticated: ")
	rl.nextRejected(t)

	// The admitted connection is the admission's: the listener releases
	// nothing when it ends, the admission frees its slot.
	require.NoError(t, first.Close(context.Background()))
	require.Eventually(t, func() bool { return rl.Stats().Live == 0 }, 5*time.Second, 5*time.Millisecond)
	held, released := adm.counts()
	assert.Equal(t, 1, held)
	assert.Zero(t, released)
	adm.mu.Lock()
	adm.held--
	adm.mu.Unlock()
	register()
	admitted()

	// A connection that leaves between its answer and its handshake gives
	// its reserved slot back.
	adm.mu.Lock()
	adm.max = 2
	adm.mu.Unlock()
	gone := dialRaw(t, rl)
	gone.register(t, reg("waf", "t"))
	require.True(t, gone.answer(t).GetAccepted())
	require.NoError(t, gone.nc.Close())
	rl.nextRejected(t)
	held, released = adm.counts()
	assert.Equal(t, 1, held)
	assert.Equal(t, 1, released)
}

func TestReverseAdmissionOptions(t *testing.T) {
	t.Parallel()
	adm := transport.WithAdmission((&capAdmission{max: 1}).admit)
	admit := transport.WithAdmitHandler(func(string, transport.Conn, *agentv2.RegistrationRequest) {})
	for name, opts := range map[string][]transport.ReverseOption{
		"AndAdmitHandler": {adm, admit, transport.WithoutAuth()},
		"AndCap":          {adm, transport.WithMaxConnsPerAgent(4), transport.WithoutAuth()},
	} {
		_, err := transport.NewReverseListener(opts...)
		assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err), "%s: %v", name, err)
	}
	l, err := transport.NewReverseListener(adm, transport.WithoutAuth())
	require.NoError(t, err)
	require.NoError(t, l.Close(context.Background()))
}
