package shadow_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/events"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/shadow"
)

// BenchmarkMirror is the cost of a fully mirrored request-headers event
// (20 headers, answered allow with one header mutation by both agents)
// through a pool to two agents on Unix sockets, one caller at a time.
// cpu-ns/op is the process's CPU time per event, agents included, the
// figure that matters on saturated cores; it is read once every mirror
// was compared. BenchmarkMirror/plain is the same without the shadow.
func BenchmarkMirror(b *testing.B) {
	allow := func(string) *agentv2.AgentResponse { return agent.AllowSetRequestHeader("x-waf", "pass") }
	r := httptest.NewRequest("GET", "http://example.com/search?q=1", nil)
	for i := range 18 {
		r.Header.Set("X-Header-"+strconv.Itoa(i), "some value of a header")
	}
	for _, rate := range []float64{0, 1} {
		name := map[float64]string{0: "plain", 1: "mirrored"}[rate]
		b.Run(name, func(b *testing.B) {
			p, ic := pair(b, &scripted{decide: allow}, &scripted{decide: allow}, shadow.WithSampleRate(rate))
			ev := events.RequestHeaders(r, "c-1")
			ctx := context.Background()
			start := cpuTime()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := p.Send(ctx, "a", ev); err != nil {
					b.Fatal(err)
				}
			}
			want := uint64(b.N)
			if rate == 0 {
				want = 0
			}
			for total(ic.Stats()) < want {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
			if d := ic.Stats()[shadow.Dropped]; d > 0 {
				b.ReportMetric(float64(d)/float64(b.N), "dropped/op")
			}
		})
	}
}

// cpuTime is the process's user and system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestMirrorCopiesTheEvent: the caller owns its event once Send returns
// and may reuse its buffers at once; the shadow gets the bytes as sent.
func TestMirrorCopiesTheEvent(t *testing.T) {
	t.Parallel()
	primary := &scripted{decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	shadowAgent := &scripted{decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	p, ic := pair(t, primary, shadowAgent)
	ev := headers("/x")
	corr := ev.GetRequestHeaders().GetMetadata().GetCorrelationId()
	send(t, p, "a", ev)
	body := []byte("first body")
	send(t, p, "a", events.RequestBodyChunk(corr, body, events.Chunk{Index: 0, Last: true}))
	copy(body, "XXXXXXXXXX") // the caller reuses its buffer
	require.Eventually(t, func() bool { return ic.Stats()[shadow.Agree] == 2 }, 5*time.Second, time.Millisecond)
	shadowAgent.mu.Lock()
	defer shadowAgent.mu.Unlock()
	assert.Equal(t, []string{"first body"}, shadowAgent.bodies)
}

// TestShadowTimeout: shadow calls the shadow never answers are abandoned
// after one to two timeouts and counted as the shadow's errors.
func TestShadowTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 50 * time.Millisecond
	primary := &scripted{decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	stalled := &scripted{stall: make(chan struct{}), decide: func(string) *agentv2.AgentResponse { return agent.Allow() }}
	t.Cleanup(func() { close(stalled.stall) })
	p, ic := pair(t, primary, stalled, shadow.WithTimeout(timeout))
	start := time.Now()
	send(t, p, "a", headers("/x"))
	send(t, p, "a", headers("/y"))
	require.Eventually(t, func() bool { return ic.Stats()[shadow.ShadowError] == 2 }, 5*time.Second, time.Millisecond)
	elapsed := time.Since(start)
	assert.GreaterOrEqual(t, elapsed, timeout, "not abandoned before the timeout")
	assert.Less(t, elapsed, 2*timeout+time.Second, "abandoned within two timeouts (and scheduling)")
	assert.Equal(t, uint64(2), total(ic.Stats()))
}
