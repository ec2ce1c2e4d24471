package transport_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// TestReversePeerCooldown: after three failed registrations in a row an
// address is refused at once for the cooldown, then may register again;
// an admitted registration clears the count.
func TestReversePeerCooldown(t *testing.T) {
	t.Parallel()
	const cooldown = 300 * time.Millisecond
	rl := startReverse(t, "tcp", transport.WithGlobalToken("t"), transport.WithPeerCooldown(3, cooldown))
	failOnce := func() {
		t.Helper()
		a := dialRaw(t, rl)
		a.register(t, reg("guess", "wrong"))
		require.False(t, a.answer(t).GetAccepted())
		r := rl.nextRejected(t)
		require.Equal(t, agentwire.CodeUnauthenticated, agentwire.CodeOf(r.err), "%v", r.err)
	}
	admit := func() {
		t.Helper()
		a := dialRaw(t, rl)
		a.register(t, reg("good", "t"))
		require.True(t, a.answer(t).GetAccepted())
		a.handshake(t, "good")
		rl.nextAdmitted(t)
	}

	// Two failures, then a success: the count starts again.
	failOnce()
	failOnce()
	admit()
	failOnce()
	failOnce()
	admit()

	for range 3 {
		failOnce()
	}
	refusedAt := time.Now()
	a := dialRaw(t, rl)
	a.closedWithin(t, 2*time.Second)
	r := rl.nextRejected(t)
	assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(r.err), "%v", r.err)
	assert.True(t, strings.Contains(r.err.Error(), "failed registrations in a row"), "%v", r.err)
	assert.Equal(t, uint64(2), rl.Stats().Admitted)

	// Even a good agent from that address waits for the cooldown.
	time.Sleep(time.Until(refusedAt.Add(cooldown + 50*time.Millisecond)))
	admit()
	assert.Equal(t, uint64(3), rl.Stats().Admitted)
}

// TestReversePeerCooldownOptions: the option is validated.
func TestReversePeerCooldownOptions(t *testing.T) {
	t.Parallel()
	_, err := transport.NewReverseListener(transport.WithoutAuth(),
		transport.WithAdmitHandler(func(string, transport.Conn, *agentv2.RegistrationRequest) {}),
		transport.WithPeerCooldown(3, 0))
	assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err))
}
