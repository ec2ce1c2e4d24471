package breaker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBreaker(t *testing.T) {
	t.Parallel()
	b := New(Config{Failures: 3, Window: time.Second, Cooldown: 5 * time.Second})
	sec := int64(time.Second)
	now := 100 * sec
	ok, probe := b.Allow(now)
	assert.True(t, ok)
	assert.False(t, probe)

	// Failures spread wider than the window do not open it.
	b.Done(now, false, Failure)
	b.Done(now+sec, false, Failure)
	b.Done(now+2*sec, false, Failure)
	st, _ := b.State()
	assert.Equal(t, Closed, st)

	// Three within the window do; neutral outcomes and successes don't count.
	now += 10 * sec
	b.Done(now, false, Failure)
	b.Done(now, false, Neutral)
	b.Done(now, false, Success)
	b.Done(now+sec/4, false, Failure)
	b.Done(now+sec/2, false, Failure)
	st, opened := b.State()
	assert.Equal(t, Open, st)
	assert.Equal(t, uint64(1), opened)
	ok, _ = b.Allow(now + sec)
	assert.False(t, ok, "open during the cool-down")

	// After the cool-down one probe goes; others wait for its outcome.
	now += 6 * sec
	ok, probe = b.Allow(now)
	assert.True(t, ok)
	assert.True(t, probe)
	ok, _ = b.Allow(now)
	assert.False(t, ok, "only one probe")
	st, _ = b.State()
	assert.Equal(t, HalfOpen, st)

	// A failed probe reopens it for another cool-down.
	b.Done(now, true, Failure)
	st, opened = b.State()
	assert.Equal(t, Open, st)
	assert.Equal(t, uint64(2), opened)
	ok, _ = b.Allow(now + sec)
	assert.False(t, ok)

	// A probe that learnt nothing lets the next request probe at once.
	now += 6 * sec
	_, probe = b.Allow(now)
	require.True(t, probe)
	b.Done(now, true, Neutral)
	ok, probe = b.Allow(now)
	assert.True(t, ok)
	assert.True(t, probe)

	// A successful probe closes it.
	b.Done(now, true, Success)
	st, _ = b.State()
	assert.Equal(t, Closed, st)
	ok, probe = b.Allow(now)
	assert.True(t, ok)
	assert.False(t, probe)

	// Disabled.
	off := New(Config{})
	for range 10 {
		off.Done(now, false, Failure)
	}
	ok, _ = off.Allow(now)
	assert.True(t, ok)
	st, _ = off.State()
	assert.Equal(t, Closed, st)
}
