package pool

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/pool/balancer"
	"github.com/agentwire/agentwire/pool/breaker"
)

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
		WithMaxConcurrency(0, 0),
		WithReconnectBackoff(time.Second, time.Millisecond),
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
	require.Equal(t, balancer.LeastInFlight, defaultConfig().agent.policy)
	b, ok := balancer.Get(defaultConfig().agent.policy)
	require.True(t, ok)
	require.Equal(t, balancer.LeastInFlight, b.Name())
}

// TestAgentSet looks agents up by id in sets small enough to scan and
// large enough to hash.
func TestAgentSet(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, maxScan, maxScan + 1, 3 * maxScan} {
		m := map[string]*agent{}
		for i := range n {
			id := "agent-" + strconv.Itoa(i)
			m[id] = &agent{id: id}
		}
		s := newAgentSet(m)
		for id, a := range m {
			assert.Same(t, a, s.get(id), "%d agents, %s", n, id)
		}
		assert.Nil(t, s.get("agent-x"), "%d agents", n)
		assert.Nil(t, s.get(""), "%d agents", n)
	}
}
