package failover_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// instance is one agent process: it records the events of each request in
// order ("H", "C0", "C1", ... "R" for response headers, "E" for the end;
// replayed headers are "H@n", n their replay_attempt),
// answers request headers with allow and a header naming the uri, and runs
// hold (if set) before answering.
type instance struct {
	agent.Base
	name string
	hold func(ctx context.Context, corr, what string)
	// mutate is the header value the instance sets on request headers
	// ("same" unless a test makes the instances disagree).
	mutate string
	// answer, if set, answers request headers instead.
	answer func(ctx context.Context, corr string) *agentv2.AgentResponse

	mu   sync.Mutex
	seen map[string][]string

	srv    *agent.Server
	cancel context.CancelFunc
	done   chan struct{}
	path   string
}

func newInstance(t testing.TB, name string) *instance {
	t.Helper()
	in := &instance{name: name, mutate: "same", seen: map[string][]string{}}
	srv, err := agent.NewServer(in, agent.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	dir, err := os.MkdirTemp("", "fo")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	in.path = filepath.Join(dir, "a.sock")
	ln, err := srv.ListenUnix(in.path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	in.srv, in.cancel, in.done = srv, cancel, make(chan struct{})
	go func() {
		defer close(in.done)
		_ = srv.ServeUnix(ctx, ln)
	}()
	t.Cleanup(in.kill)
	return in
}

func (in *instance) endpoint() string { return "unix://" + in.path }

// kill stops the instance at once: its connections drop.
func (in *instance) kill() {
	in.srv.Close()
	in.cancel()
	<-in.done
}

func (in *instance) record(ctx context.Context, corr, what string) {
	in.mu.Lock()
	in.seen[corr] = append(in.seen[corr], what)
	in.mu.Unlock()
	if in.hold != nil {
		in.hold(ctx, corr, what)
	}
}

// events returns what the instance saw of request corr.
func (in *instance) events(corr string) []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.seen[corr]...)
}

func (in *instance) RequestHeaders(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	corr := ev.GetMetadata().GetCorrelationId()
	h := "H"
	if n := ev.GetMetadata().GetReplayAttempt(); n > 0 {
		h = fmt.Sprintf("H@%d", n)
	}
	in.record(ctx, corr, h)
	if in.answer != nil {
		return in.answer(ctx, corr), nil
	}
	return agent.AllowSetRequestHeader("x-checked", in.mutate), nil
}

func (in *instance) RequestBodyChunk(ctx context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	in.record(ctx, ev.GetCorrelationId(), fmt.Sprintf("C%d", ev.GetChunkIndex()))
	return agent.Allow(), nil
}

func (in *instance) ResponseHeaders(ctx context.Context, ev *agentv2.ResponseHeadersEvent) (*agentv2.AgentResponse, error) {
	in.record(ctx, ev.GetCorrelationId(), "R")
	return agent.Allow(), nil
}

func (in *instance) RequestComplete(ctx context.Context, ev *agentv2.RequestCompleteEvent) (*agentv2.AgentResponse, error) {
	in.record(ctx, ev.GetCorrelationId(), "E")
	return agent.Allow(), nil
}

// spread is a pool dialer that sends each new connection of an agent to
// the next of its instances in turn, so that one agent id has connections
// to several agent processes.
func spread(instances ...*instance) pool.Dialer {
	var n atomic.Uint64
	return func(ctx context.Context, _ string, opts ...transport.Option) (transport.Conn, error) {
		in := instances[(n.Add(1)-1)%uint64(len(instances))]
		return transport.Dial(ctx, in.endpoint(), opts...)
	}
}

func newPool(t *testing.T, opts ...pool.Option) *pool.Pool {
	t.Helper()
	base := []pool.Option{pool.WithLogger(slog.New(slog.DiscardHandler)), pool.WithPolicy("round_robin"),
		pool.WithReconnectBackoff(5*time.Millisecond, 50*time.Millisecond), pool.WithoutCircuitBreaker()}
	p, err := pool.New(append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func headers(corr string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{CorrelationId: corr}, Method: "POST", Uri: "/upload"}}}
}

func chunk(corr string, i uint32, size int) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: corr, ChunkIndex: i, Data: make([]byte, size)}}}
}

func complete(corr string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{
		CorrelationId: corr, StatusCode: 200}}}
}
