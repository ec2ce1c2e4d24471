package pool

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

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
