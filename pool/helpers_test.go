package pool

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sdk "github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool/balancer"
	"github.com/agentwire/agentwire/transport"
)

// unixAgent is a real agent: an sdk.Server serving a recorder on a Unix
// socket. kill closes it at once (connections drop); start brings it back
// on the same path.
type unixAgent struct {
	t    *testing.T
	path string
	rec  *recorder
	opts []sdk.Option

	mu     sync.Mutex
	srv    *sdk.Server
	cancel context.CancelFunc
	done   chan struct{}
}

func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func newUnixAgent(t *testing.T, rec *recorder, opts ...sdk.Option) *unixAgent {
	t.Helper()
	opts = append([]sdk.Option{sdk.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	ua := &unixAgent{t: t, path: filepath.Join(shortTempDir(t), "a.sock"), rec: rec, opts: opts}
	ua.start()
	t.Cleanup(ua.kill)
	return ua
}

func (ua *unixAgent) endpoint() string { return "unix://" + ua.path }

func (ua *unixAgent) start() {
	ua.t.Helper()
	srv, err := sdk.NewServer(ua.rec, ua.opts...)
	require.NoError(ua.t, err)
	ln, err := srv.ListenUnix(ua.path)
	require.NoError(ua.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeUnix(ctx, ln)
	}()
	ua.mu.Lock()
	ua.srv, ua.cancel, ua.done = srv, cancel, done
	ua.mu.Unlock()
}

// kill stops the agent at once: every connection drops.
func (ua *unixAgent) kill() {
	ua.mu.Lock()
	srv, cancel, done := ua.srv, ua.cancel, ua.done
	ua.srv = nil
	ua.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	cancel()
	<-done
}

func (ua *unixAgent) server() *sdk.Server {
	ua.mu.Lock()
	defer ua.mu.Unlock()
	return ua.srv
}

// recorder is a test handler: it counts events per connection and per
// request, can hold events until released, and reports a settable health.
type recorder struct {
	sdk.Base
	name   string
	track  bool // record the connection of every event per correlation id
	health atomic.Int32

	// hook, if set, runs for every event and decides its answer.
	hook      atomic.Pointer[hookFunc]
	configure func(ctx context.Context, ev *agentv2.ConfigureEvent) error

	events, active, drains, shutdowns, configures atomic.Int64

	mu     sync.Mutex
	byPeer map[*sdk.Peer]int            // events per connection
	byCorr map[string]map[*sdk.Peer]int // connections seen per request (track)
	kinds  map[string][]agentv2.EventType
	uris   []string // of request headers, in arrival order (track)
}

var _ sdk.HealthReporter = (*recorder)(nil)

func newRecorder(name string) *recorder {
	return &recorder{name: name, byPeer: map[*sdk.Peer]int{}, byCorr: map[string]map[*sdk.Peer]int{}, kinds: map[string][]agentv2.EventType{}}
}

func (r *recorder) Health(context.Context) agentv2.HealthState {
	return agentv2.HealthState(r.health.Load())
}

func (r *recorder) handle(ctx context.Context, corr string, kind agentv2.EventType) (*agentv2.AgentResponse, error) {
	r.events.Add(1)
	r.active.Add(1)
	defer r.active.Add(-1)
	peer := sdk.PeerFromContext(ctx)
	r.mu.Lock()
	r.byPeer[peer]++
	if r.track {
		if r.byCorr[corr] == nil {
			r.byCorr[corr] = map[*sdk.Peer]int{}
		}
		r.byCorr[corr][peer]++
		r.kinds[corr] = append(r.kinds[corr], kind)
	}
	r.mu.Unlock()
	if h := r.hook.Load(); h != nil {
		return (*h)(ctx, corr, kind)
	}
	return nil, nil
}

type hookFunc = func(ctx context.Context, corr string, kind agentv2.EventType) (*agentv2.AgentResponse, error)

// setHook sets how the recorder answers events, safely while it runs.
func (r *recorder) setHook(h hookFunc) { r.hook.Store(&h) }

func (r *recorder) peers() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, n := range r.byPeer {
		out = append(out, n)
	}
	return out
}

func (r *recorder) RequestHeaders(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	if r.track {
		r.mu.Lock()
		r.uris = append(r.uris, ev.GetUri())
		r.mu.Unlock()
	}
	return r.handle(ctx, ev.GetMetadata().GetCorrelationId(), agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS)
}

func (r *recorder) RequestBodyChunk(ctx context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	return r.handle(ctx, ev.GetCorrelationId(), agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK)
}

func (r *recorder) ResponseHeaders(ctx context.Context, ev *agentv2.ResponseHeadersEvent) (*agentv2.AgentResponse, error) {
	return r.handle(ctx, ev.GetCorrelationId(), agentv2.EventType_EVENT_TYPE_RESPONSE_HEADERS)
}

func (r *recorder) ResponseBodyChunk(ctx context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	return r.handle(ctx, ev.GetCorrelationId(), agentv2.EventType_EVENT_TYPE_RESPONSE_BODY_CHUNK)
}

func (r *recorder) RequestComplete(ctx context.Context, ev *agentv2.RequestCompleteEvent) (*agentv2.AgentResponse, error) {
	return r.handle(ctx, ev.GetCorrelationId(), agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE)
}

func (r *recorder) WebSocketFrame(ctx context.Context, ev *agentv2.WebSocketFrameEvent) (*agentv2.AgentResponse, error) {
	return r.handle(ctx, ev.GetCorrelationId(), agentv2.EventType_EVENT_TYPE_WEBSOCKET_FRAME)
}

func (r *recorder) GuardrailInspect(ctx context.Context, ev *agentv2.GuardrailInspectEvent) (*agentv2.AgentResponse, error) {
	return r.handle(ctx, ev.GetCorrelationId(), agentv2.EventType_EVENT_TYPE_GUARDRAIL_INSPECT)
}

func (r *recorder) Configure(ctx context.Context, ev *agentv2.ConfigureEvent) error {
	r.configures.Add(1)
	if r.configure != nil {
		return r.configure(ctx, ev)
	}
	return nil
}

func (r *recorder) Drain(context.Context, *agentv2.DrainRequest)       { r.drains.Add(1) }
func (r *recorder) Shutdown(context.Context, *agentv2.ShutdownRequest) { r.shutdowns.Add(1) }

// holdUntil returns a hook that blocks events of requests whose correlation
// id starts with prefix until release is closed or the call is cancelled.
func holdUntil(prefix string, release <-chan struct{}) func(context.Context, string, agentv2.EventType) (*agentv2.AgentResponse, error) {
	return func(ctx context.Context, corr string, _ agentv2.EventType) (*agentv2.AgentResponse, error) {
		if strings.HasPrefix(corr, prefix) {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return nil, nil
	}
}

// newTestPool returns a pool with fast reconnection and no background
// probing (tests call tick themselves), shut down at cleanup. It balances
// round robin, which routing tests count on, unless opts choose otherwise.
func newTestPool(t *testing.T, opts ...Option) *Pool {
	t.Helper()
	base := []Option{WithReconnectBackoff(5*time.Millisecond, 50*time.Millisecond), WithProbeInterval(time.Hour, time.Second),
		WithLogger(slog.New(slog.DiscardHandler)), WithPolicy(balancer.RoundRobin)}
	p, err := New(append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return p
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Event builders.

func headers(corr string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{CorrelationId: corr, RequestId: corr}, Method: "GET", Uri: "/", HttpVersion: "HTTP/1.1",
	}}}
}

func requestBody(corr string, i uint32, last bool) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: corr, ChunkIndex: i, Data: []byte("chunk"), IsLast: last,
	}}}
}

func responseHeaders(corr string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: &agentv2.ResponseHeadersEvent{
		CorrelationId: corr, StatusCode: 200,
	}}}
}

func responseBody(corr string, i uint32, last bool) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: corr, ChunkIndex: i, Data: []byte("chunk"), IsLast: last,
	}}}
}

func websocketFrame(corr string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_WebsocketFrame{WebsocketFrame: &agentv2.WebSocketFrameEvent{
		CorrelationId: corr, ClientToServer: true, FrameType: agentv2.WebSocketFrameEvent_FRAME_TYPE_TEXT, Payload: []byte("hi"),
	}}}
}

func guardrail(corr string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Guardrail{Guardrail: &agentv2.GuardrailInspectEvent{
		CorrelationId: corr, Content: "prompt", ContentType: agentv2.GuardrailContentType_GUARDRAIL_CONTENT_TYPE_PROMPT,
	}}}
}

func complete(corr string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{
		CorrelationId: corr, StatusCode: 200,
	}}}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

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

// stats returns the pool's snapshot of agent id.
func stats(t *testing.T, p *Pool, id string) AgentStats {
	t.Helper()
	s, err := p.AgentStats(id)
	require.NoError(t, err)
	return s
}

func countState(s AgentStats, st ConnState) int {
	n := 0
	for _, c := range s.Conns {
		if c.State == st {
			n++
		}
	}
	return n
}

func itoa(i int) string { return strconv.Itoa(i) }

// adoptingListener serves a reverse listener on a Unix socket that feeds p
// (Pool.ReverseOptions); onRefused, if set, hears the registrations it
// refused. It returns the socket's path.
func adoptingListener(t *testing.T, p *Pool, onRefused func(error)) string {
	t.Helper()
	ln, err := transport.NewReverseListener(append(p.ReverseOptions(),
		transport.WithoutAuth(),
		transport.WithConnOptions(transport.WithLogger(slog.New(slog.DiscardHandler))),
		transport.WithRejectHandler(func(_ net.Addr, _ string, err error) {
			if onRefused != nil {
				onRefused(err)
			}
		}))...)
	require.NoError(t, err)
	path := filepath.Join(shortTempDir(t), "rev.sock")
	_, err = ln.ListenUnix(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close(context.Background()) })
	return path
}
