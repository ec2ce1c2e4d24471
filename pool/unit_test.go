package pool

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/pool/breaker"
)

func TestConnTable(t *testing.T) {
	t.Parallel()
	tab := newConnTable(3, time.Second)
	zero := 0
	tab.onZero = func() { zero++ }
	sc := testConns(2)
	now := int64(1e12)
	require.True(t, tab.put(tab.key("a"), tableEntry{sc: sc[0], touched: now}))
	require.True(t, tab.put(tab.key("b"), tableEntry{sc: sc[1], touched: now}))
	require.True(t, tab.put(tab.key("a"), tableEntry{sc: sc[1], touched: now}), "rebinding an existing key")
	require.True(t, tab.put(tab.key("c"), tableEntry{sc: sc[0], touched: now}))
	assert.False(t, tab.put(tab.key("d"), tableEntry{sc: sc[0], touched: now}), "full")
	assert.Equal(t, 3, tab.len())

	e, ok := tab.get(tab.key("a"), now+int64(500*time.Millisecond))
	require.True(t, ok)
	assert.Same(t, sc[1], e.sc)
	// "a" was touched, "b" and "c" expire.
	assert.Equal(t, 2, tab.sweep(now+int64(1200*time.Millisecond)))
	_, ok = tab.get(tab.key("b"), now)
	assert.False(t, ok)
	_, ok = tab.get(tab.key("a"), now+int64(1600*time.Millisecond))
	assert.False(t, ok, "expired on read")
	assert.Equal(t, 0, tab.len())
	assert.Equal(t, 1, zero)

	// A full table reclaims expired entries of the shard before refusing.
	small := newConnTable(1, time.Second)
	require.True(t, small.put(small.key("x"), tableEntry{sc: sc[0], touched: now}))
	assert.False(t, small.put(small.key("x2"), tableEntry{sc: sc[0], touched: now}))
	_, ok = small.del(small.key("x"))
	assert.True(t, ok)
	_, ok = small.del(small.key("x"))
	assert.False(t, ok)
	assert.True(t, small.put(small.key("x2"), tableEntry{sc: sc[0], touched: now}))
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	var r uint64
	b := &backoff{base: 100 * time.Millisecond, max: time.Second, rand: func() uint64 { return r }}
	// rand 0 gives the low end of the jitter: 0.8 d.
	var got []time.Duration
	for range 7 {
		got = append(got, b.next())
	}
	assert.Equal(t, []time.Duration{80, 160, 320, 640, 800, 800, 800}, scaleMs(got))
	b.reset()
	r = ^uint64(0) // the high end: just under 1.2 d
	d := b.next()
	assert.Greater(t, d, 119*time.Millisecond)
	assert.LessOrEqual(t, d, 120*time.Millisecond)
}

func scaleMs(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d / time.Millisecond
	}
	return out
}

func TestClassify(t *testing.T) {
	t.Parallel()
	live := context.Background()
	dead, cancel := context.WithCancel(live)
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want breaker.Outcome
	}{
		{live, nil, breaker.Success},
		{live, agentwire.NewWireError(agentwire.CodeInternal, "handler failed"), breaker.Success},
		{live, agentwire.NewError(agentwire.CodeUnavailable, errors.New("gone")), breaker.Failure},
		{live, agentwire.Errorf(agentwire.CodeDeadlineExceeded, "no decision within 1s"), breaker.Failure},
		{dead, agentwire.WrapContextError(context.Canceled), breaker.Neutral},
		{dead, agentwire.NewError(agentwire.CodeUnavailable, errors.New("gone")), breaker.Neutral},
		{live, agentwire.Errorf(agentwire.CodeCanceled, "request cancelled"), breaker.Neutral},
		{live, agentwire.Errorf(agentwire.CodeResourceExhausted, "too big"), breaker.Neutral},
	} {
		assert.Equal(t, tc.want, classify(tc.ctx, tc.err), fmt.Sprint(tc.err))
	}
}

func TestOptionValidation(t *testing.T) {
	t.Parallel()
	for _, opt := range []Option{
		WithPolicy("fastest"),
		WithConnections(0),
		WithConcurrencyLimit(0, 0),
		WithBackoff(time.Second, time.Millisecond),
		WithProbeInterval(0, time.Second),
		WithCircuitBreaker(3, 0, time.Second),
		WithFlowControl(FlowControlMode(7), 0),
		WithAffinity(0, time.Second),
		WithRand(nil),
	} {
		_, err := New(opt)
		assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err), "%v", err)
	}
}

// TestDefaultPolicy: pools balance least in flight unless told otherwise.
func TestDefaultPolicy(t *testing.T) {
	t.Parallel()
	require.Equal(t, LeastInFlight, defaultConfig().agent.policy)
	b, ok := builtins[defaultConfig().agent.policy]
	require.True(t, ok)
	require.Equal(t, LeastInFlight, b.Name())
}
