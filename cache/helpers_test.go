package cache_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/cache"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
)

// policy is a scripted agent: it answers request headers with decide and
// counts every event it sees.
type policy struct {
	agent.Base
	decide  func(ev *agentv2.RequestHeadersEvent) *agentv2.AgentResponse
	calls   atomic.Int64
	bodies  atomic.Int64
	gate    chan struct{} // if set, the first call waits for it
	gateOne sync.Once
}

func (p *policy) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	p.calls.Add(1)
	if p.gate != nil {
		p.gateOne.Do(func() { <-p.gate })
	}
	return p.decide(ev), nil
}

func (p *policy) RequestBodyChunk(context.Context, *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	p.bodies.Add(1)
	return agent.Allow(), nil
}

func (p *policy) RequestComplete(context.Context, *agentv2.RequestCompleteEvent) (*agentv2.AgentResponse, error) {
	p.bodies.Add(1)
	return agent.Allow(), nil
}

// fixture is a pool with a cache interceptor in front of one agent
// ("waf") on a Unix socket.
type fixture struct {
	p     *pool.Pool
	ic    *cache.Interceptor
	srv   *agent.Server
	clock *fakeClock
	stop  func() // stops the agent
	start func() // starts the agent again, after stop
}

// restartAgent stops the agent and starts a new one on the same socket.
func (f *fixture) restartAgent(t *testing.T) {
	t.Helper()
	f.stop()
	f.start()
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newFixture(t *testing.T, h agent.Handler, opts ...cache.Option) *fixture {
	t.Helper()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	ic, err := cache.NewInterceptor(append([]cache.Option{cache.WithClock(clock.Now)}, opts...)...)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "a.sock")
	f := &fixture{ic: ic, clock: clock}
	var mu sync.Mutex // guards stop's state across restarts
	f.start = func() {
		srv, err := agent.NewServer(h, agent.WithAgentID("waf"), agent.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		require.NoError(t, err)
		ln, err := srv.ListenUnix(path)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- srv.ServeUnix(ctx, ln) }()
		var once sync.Once
		mu.Lock()
		f.srv = srv
		f.stop = func() {
			once.Do(func() {
				cancel()
				srv.Close()
				require.NoError(t, <-served)
			})
		}
		mu.Unlock()
	}
	f.start()
	stop := func() {
		mu.Lock()
		s := f.stop
		mu.Unlock()
		s()
	}
	p, err := pool.New(pool.WithInterceptors(ic), pool.WithConfigUpdateHandler(ic.ConfigUpdateHandler(nil)),
		pool.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	require.NoError(t, p.AddAgent(context.Background(), "waf", "unix://"+path))
	t.Cleanup(func() {
		require.NoError(t, p.Close())
		stop()
		ic.Close()
	})
	f.p = p
	return f
}

var nextID atomic.Int64

func headersEvent(method, uri string, headers ...string) *agentv2.ProxyToAgent {
	ev := &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{CorrelationId: fmt.Sprintf("req-%d", nextID.Add(1)), ClientIp: "192.0.2.1"},
		Method:   method, Uri: uri,
	}
	for i := 0; i+1 < len(headers); i += 2 {
		ev.Headers = append(ev.Headers, &agentv2.Header{Name: headers[i], Value: headers[i+1]})
	}
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: ev}}
}

func (f *fixture) send(t *testing.T, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return f.p.Send(ctx, "waf", ev)
}
