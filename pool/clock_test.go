package pool

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClockReadsPerRequest: the pipeline reads the clock for a request's
// pin and for the one event in latencySample it times, not for every
// event: a request's later events mark its pin used without a reading.
func TestClockReadsPerRequest(t *testing.T) {
	t.Parallel()
	var reads atomic.Int64
	t0 := time.Unix(1_700_000_000, 0)
	p, err := New(WithProbeInterval(time.Hour, time.Second), WithClock(func() time.Time {
		reads.Add(1)
		return t0
	}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	for range 2 {
		require.NoError(t, p.AdoptConn("waf", newMemConn()))
	}
	const n = 300
	reqs := newRequests(n) // headers, a body chunk, request_complete
	ctx := context.Background()
	before := reads.Load()
	for _, req := range reqs {
		for _, ev := range req {
			_, err := p.Send(ctx, "waf", ev)
			require.NoError(t, err)
		}
	}
	got := reads.Load() - before
	// One per pin, two per timed event (its send and its answer).
	sampled := int64(3*n/latencySample + 2)
	assert.GreaterOrEqual(t, got, int64(n), "each request's pin reads the clock")
	assert.LessOrEqual(t, got, n+2*sampled, "later events read no clock")
	assert.Zero(t, p.lookup("waf").aff.Len(), "every pin ended")
}

// untimedIC passes events on and never reads Call.Duration.
type untimedIC struct{ durations []time.Duration }

func (u *untimedIC) WrapSend(next SendFunc) SendFunc {
	return func(ctx context.Context, c *Call) (*agentv2.AgentResponse, error) {
		resp, err := next(ctx, c)
		u.durations = append(u.durations, c.Duration)
		return resp, err
	}
}

func (*untimedIC) Untimed() {}

// Interceptors that never read Call.Duration spare the pipeline its clock
// readings; one interceptor that may read it brings them back.
func TestUntimedInterceptors(t *testing.T) {
	t.Parallel()
	const n = 100
	run := func(t *testing.T, ics ...Interceptor) (int64, *untimedIC) {
		var reads atomic.Int64
		t0 := time.Unix(1_700_000_000, 0)
		p, err := New(WithProbeInterval(time.Hour, time.Second), WithInterceptors(ics...), WithClock(func() time.Time {
			return t0.Add(time.Duration(reads.Add(1)) * time.Millisecond)
		}))
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		require.NoError(t, p.AdoptConn("waf", newMemConn()))
		before := reads.Load()
		for _, req := range newRequests(n) {
			for _, ev := range req {
				_, err := p.Send(context.Background(), "waf", ev)
				require.NoError(t, err)
			}
		}
		return reads.Load() - before, ics[0].(*untimedIC)
	}
	untimed, u := run(t, &untimedIC{})
	assert.LessOrEqual(t, untimed, int64(n+2*(3*n/latencySample+2)), "as without interceptors")
	assert.Len(t, u.durations, 3*n)
	for _, d := range u.durations {
		require.Zero(t, d)
	}
	timed, u := run(t, &untimedIC{}, InterceptorFunc(func(next SendFunc) SendFunc { return next }))
	assert.GreaterOrEqual(t, timed, int64(2*3*n), "the start and the answer of every event")
	for _, d := range u.durations {
		require.Positive(t, d)
	}
}
