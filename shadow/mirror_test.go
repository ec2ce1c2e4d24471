package shadow

import (
	"context"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire/events"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// BenchmarkMirror is the interceptor's own cost per mirrored event, caller
// and worker together, with a pipeline that answers at once: request
// headers with 20 headers, answered allow with one header mutation by both
// agents. cpu-ns/op is the process's CPU time per event, the figure that
// matters on saturated cores; it is measured once every mirror was
// compared.
func BenchmarkMirror(b *testing.B) {
	ic, err := New("a", "b", WithWorkers(4), WithQueue(1<<18))
	if err != nil {
		b.Fatal(err)
	}
	defer ic.Close()
	r := httptest.NewRequest("GET", "http://example.com/search?q=1", nil)
	for i := range 18 {
		r.Header.Set("X-Header-"+strconv.Itoa(i), "some value of a header")
	}
	ev := events.RequestHeaders(r, "c-1")
	resp := &agentv2.AgentResponse{
		CorrelationId: "c-1",
		Decision:      &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}},
		RequestHeaders: []*agentv2.HeaderOp{{Operation: &agentv2.HeaderOp_Set{
			Set: &agentv2.Header{Name: "x-waf", Value: "pass"}}}},
	}
	send := ic.WrapSend(func(context.Context, *pool.Call) (*agentv2.AgentResponse, error) { return resp, nil })
	c := &pool.Call{AgentID: "a", CorrelationID: "c-1", Type: agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS}
	ctx := context.Background()
	compared := func() uint64 {
		n := uint64(0)
		for _, v := range ic.Stats() {
			n += v
		}
		return n
	}
	runtime.GC()
	start, before := cpuTime(), compared()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.Event = ev
		if _, err := send(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	for compared()-before < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	if d := ic.Stats()[Dropped]; d > 0 {
		b.ReportMetric(float64(d)/float64(b.N), "dropped/op")
	}
}

// cpuTime is the process's user and system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestNewAllocatesLittle: an interceptor's queues hold pointers, so
// building one with the default 64 workers of 1,024 events costs well
// under a megabyte before any event is mirrored.
func TestNewAllocatesLittle(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ic, err := New("a", "b")
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	ic.Close()
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("New allocated %d bytes, want under 1 MiB", n)
	}
}

// TestMirrorCopiesTheEvent: the caller owns its event once Send returns
// and may reuse it; the shadow still gets the event as it was sent, and
// each worker's reused event never leaks one job's fields into the next.
func TestMirrorCopiesTheEvent(t *testing.T) {
	ic, err := New("a", "b", WithWorkers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	var (
		mu   sync.Mutex
		seen []*agentv2.ProxyToAgent
	)
	reused := make(chan struct{}) // the shadow's calls wait until the caller reused its buffer
	allow := &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}
	send := ic.WrapSend(func(_ context.Context, c *pool.Call) (*agentv2.AgentResponse, error) {
		if c.AgentID == "b" {
			<-reused
			mu.Lock()
			seen = append(seen, c.Event.CloneVT())
			mu.Unlock()
		}
		return allow, nil
	})
	body := []byte("first body")
	r := httptest.NewRequest("GET", "http://example.com/one", nil)
	r.Header.Set("X-One", "1")
	for _, ev := range []*agentv2.ProxyToAgent{
		events.RequestHeaders(r, "c-1"),
		events.RequestBodyChunk("c-1", body, events.Chunk{Index: 0, Last: true}),
	} {
		c := &pool.Call{AgentID: "a", CorrelationID: "c-1", Type: ev.EventType(), Event: ev}
		if _, err := send(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	copy(body, "XXXXXXXXXX") // the caller reuses its buffer at once
	close(reused)
	deadline := time.Now().Add(5 * time.Second)
	for ic.Stats()[Agree] < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("the shadow saw %d events, want 2", len(seen))
	}
	if h := seen[0].GetRequestHeaders(); h.GetUri() != "http://example.com/one" || len(h.GetHeaders()) == 0 {
		t.Errorf("first mirrored event: %v", seen[0])
	}
	if got := string(seen[1].GetRequestBodyChunk().GetData()); got != "first body" {
		t.Errorf("mirrored body %q, want the bytes as sent", got)
	}
	if seen[1].GetRequestHeaders() != nil {
		t.Errorf("the second mirrored event kept the first's headers")
	}
}

// TestShadowTimeout: a shadow call that hangs is abandoned between one and
// two timeouts and counted as the shadow's error.
func TestShadowTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	ic, err := New("a", "b", WithWorkers(1), WithTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	waited := make(chan time.Duration, 2)
	allow := &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}
	send := ic.WrapSend(func(ctx context.Context, c *pool.Call) (*agentv2.AgentResponse, error) {
		if c.AgentID != "b" {
			return allow, nil
		}
		start := time.Now()
		<-ctx.Done()
		waited <- time.Since(start)
		return nil, ctx.Err()
	})
	ev := events.RequestComplete("c-1", events.Completion{})
	for range 2 {
		c := &pool.Call{AgentID: "a", CorrelationID: "c-1", Type: ev.EventType(), Event: ev}
		if _, err := send(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		select {
		case d := <-waited:
			if d < timeout-5*time.Millisecond {
				t.Errorf("a shadow call was abandoned after %v, before its timeout (%v)", d, timeout)
			}
			if d > 2*timeout+timeout/2 {
				t.Errorf("a hung shadow call lasted %v, want at most two timeouts (%v)", d, 2*timeout)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a hung shadow call was never abandoned")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for ic.Stats()[ShadowError] < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := ic.Stats()[ShadowError]; n != 2 {
		t.Errorf("shadow errors %d, want 2", n)
	}
}
