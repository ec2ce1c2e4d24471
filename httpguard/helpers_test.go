package httpguard_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/httpguard"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/pool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// sockPath returns a short socket path (sun_path is small).
func sockPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hg")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "a.sock")
}

// startUnix serves h on a Unix socket and returns its endpoint.
func startUnix(t *testing.T, h agent.Handler, opts ...agent.Option) string {
	t.Helper()
	srv, err := agent.NewServer(h, append([]agent.Option{agent.WithLogger(quiet)}, opts...)...)
	require.NoError(t, err)
	path := sockPath(t)
	ln, err := srv.ListenUnix(path)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeUnix(context.Background(), ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return "unix://" + path
}

// startGRPC serves h over gRPC on loopback and returns its endpoint.
func startGRPC(t *testing.T, h agent.Handler, opts ...agent.Option) string {
	t.Helper()
	srv, err := agent.NewServer(h, append([]agent.Option{agent.WithLogger(quiet)}, opts...)...)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer(agent.GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); srv.Close(); <-done })
	return "grpc://" + ln.Addr().String()
}

// newPool returns a pool with the agents of endpoints (id → endpoint).
func newPool(t *testing.T, endpoints map[string]string, opts ...pool.Option) *pool.Pool {
	t.Helper()
	p, err := pool.New(append([]pool.Option{pool.WithLogger(quiet), pool.WithConnections(1)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for id, ep := range endpoints {
		require.NoError(t, p.AddAgent(ctx, id, ep))
	}
	return p
}

// upstream is a real upstream on loopback. It echoes the request body,
// and each request header X-Foo as the response header Echo-X-Foo.
// /stream writes "one" and "two" with a flush between.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		for name, vs := range r.Header {
			if strings.HasPrefix(name, "X-") {
				w.Header()["Echo-"+name] = vs
			}
		}
		if r.URL.Path == "/stream" {
			_, _ = io.WriteString(w, "one")
			_ = http.NewResponseController(w).Flush()
			time.Sleep(50 * time.Millisecond)
			_, _ = io.WriteString(w, "two")
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(u.Close)
	return u
}

// newGuard builds a guard over p.
func newGuard(t *testing.T, p *pool.Pool, opts ...httpguard.Option) *httpguard.Guard {
	t.Helper()
	g, err := httpguard.New(p, append([]httpguard.Option{httpguard.WithLogger(quiet)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, g.Close(ctx))
	})
	return g
}

// serveProxy serves a guarded httputil.ReverseProxy to up and returns its
// URL.
func serveProxy(t *testing.T, g *httpguard.Guard, up string) string {
	t.Helper()
	target, err := url.Parse(up)
	require.NoError(t, err)
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.SetXForwarded() },
		ErrorHandler:  httpguard.ProxyErrorHandler,
		FlushInterval: -1,
		ErrorLog:      nil,
	}
	return serve(t, g.Middleware(rp))
}

// serve serves h on loopback and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = nil
	s.Start()
	t.Cleanup(s.Close)
	return s.URL
}

// newClient returns a client that does not follow redirects and keeps no
// connections after the test.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// reply is a response read whole.
type reply struct {
	status int
	header http.Header
	body   string
	err    error // reading the body
}

func do(t *testing.T, c *http.Client, method, u string, body io.Reader, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return reply{status: res.StatusCode, header: res.Header, body: string(b), err: err}
}

// script is an agent whose answers tests choose; it records what it saw.
type script struct {
	agent.Base
	headers func(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error)
	body    func(ctx context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error)
	rspHdrs func(ctx context.Context, ev *agentv2.ResponseHeadersEvent) (*agentv2.AgentResponse, error)
	rspBody func(ctx context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error)
	frame   func(ctx context.Context, ev *agentv2.WebSocketFrameEvent) (*agentv2.AgentResponse, error)

	mu       sync.Mutex
	seen     []*agentv2.RequestHeadersEvent
	chunks   int
	complete []*agentv2.RequestCompleteEvent
}

func (s *script) RequestHeaders(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	s.mu.Lock()
	s.seen = append(s.seen, proto.Clone(ev).(*agentv2.RequestHeadersEvent)) // the SDK recycles ev
	s.mu.Unlock()
	if s.headers != nil {
		return s.headers(ctx, ev)
	}
	return agent.Allow(), nil
}

func (s *script) RequestBodyChunk(ctx context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	s.mu.Lock()
	s.chunks++
	s.mu.Unlock()
	if s.body != nil {
		return s.body(ctx, ev)
	}
	return agent.Allow(), nil
}

func (s *script) ResponseHeaders(ctx context.Context, ev *agentv2.ResponseHeadersEvent) (*agentv2.AgentResponse, error) {
	if s.rspHdrs != nil {
		return s.rspHdrs(ctx, ev)
	}
	return agent.Allow(), nil
}

func (s *script) ResponseBodyChunk(ctx context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	if s.rspBody != nil {
		return s.rspBody(ctx, ev)
	}
	return agent.Allow(), nil
}

func (s *script) WebSocketFrame(ctx context.Context, ev *agentv2.WebSocketFrameEvent) (*agentv2.AgentResponse, error) {
	if s.frame != nil {
		return s.frame(ctx, ev)
	}
	return agent.Allow(), nil
}

func (s *script) RequestComplete(_ context.Context, ev *agentv2.RequestCompleteEvent) (*agentv2.AgentResponse, error) {
	s.mu.Lock()
	s.complete = append(s.complete, proto.Clone(ev).(*agentv2.RequestCompleteEvent))
	s.mu.Unlock()
	return agent.Allow(), nil
}

func (s *script) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// peer is a raw agent (internal/testagent) that records every message,
// cancels included, and answers each event with decide's answer (allow if
// nil); die makes it close the connection instead of answering.
type peer struct {
	decide  func(ctx context.Context, ev *agentv2.ProxyToAgent) *agentv2.AgentResponse
	die     func(ev *agentv2.ProxyToAgent) bool
	cancels chan *agentv2.CancelRequest
}

func startPeer(t *testing.T, pr *peer) string {
	t.Helper()
	pr.cancels = make(chan *agentv2.CancelRequest, 64)
	p, err := testagent.ListenFramedPeer(sockPath(t), func(*agentv2.ProxyToAgent) testagent.Script { return pr.run })
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p.Endpoint()
}

func (pr *peer) run(c *testagent.PeerConn) {
	if c.Accept("peer") != nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	var mu sync.Mutex // guards sends and inflight
	inflight := map[string]context.CancelFunc{}
	for {
		m, err := c.Recv()
		if err != nil {
			return
		}
		switch {
		case m.GetPing() != nil:
			mu.Lock()
			_ = c.Send(&agentv2.AgentToProxy{EventId: m.GetEventId(), Message: &agentv2.AgentToProxy_Pong{
				Pong: &agentv2.Pong{Sequence: m.GetPing().GetSequence()}}})
			mu.Unlock()
		case m.GetCancel() != nil:
			select {
			case pr.cancels <- m.GetCancel():
			default: // nobody is looking: never stall the connection
			}
			mu.Lock()
			if f := inflight[m.GetCancel().GetCorrelationId()]; f != nil {
				f()
			}
			mu.Unlock()
		case m.EventType() != agentv2.EventType_EVENT_TYPE_UNSPECIFIED:
			if pr.die != nil && pr.die(m) {
				c.Close()
				return
			}
			corr, _ := m.EventCorrelationID()
			ectx, cancel := context.WithCancel(ctx)
			mu.Lock()
			inflight[corr] = cancel
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cancel()
				var resp *agentv2.AgentResponse
				if pr.decide != nil {
					resp = pr.decide(ectx, m)
				}
				mu.Lock()
				defer mu.Unlock()
				_ = c.Reply(m, resp)
			}()
		}
	}
}

// nextCancel waits for the peer's next cancel.
func (pr *peer) nextCancel(t *testing.T) *agentv2.CancelRequest {
	t.Helper()
	select {
	case c := <-pr.cancels:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no cancel")
	}
	return nil
}

// logBuffer is a slog handler target tests read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
