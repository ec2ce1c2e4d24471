package transport_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// suiteAgent is the handler every transport in the suite talks to. Its
// behaviour is chosen by the request URI so one agent serves every check.
type suiteAgent struct {
	agent.Base
	cancelled atomic.Int32
	drained   atomic.Int32
	release   chan struct{} // closed to let /hold requests finish
	started   chan string   // /hold and /slow requests report their start
}

func newSuiteAgent() *suiteAgent {
	return &suiteAgent{release: make(chan struct{}), started: make(chan string, 4096)}
}

func (a *suiteAgent) RequestHeaders(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	uri := ev.GetUri()
	switch {
	case uri == "/block":
		r := agent.Block(403, "blocked")
		r.Audit = agent.Audit([]string{"suite-block"}, "rule-1")
		return r, nil
	case uri == "/redirect":
		return agent.Redirect("https://example.test/login", 302), nil
	case uri == "/challenge":
		return agent.Challenge("captcha", map[string]string{"site": "x"}), nil
	case uri == "/error":
		return nil, agentwire.Errorf(agentwire.CodePermissionDenied, "suite says no")
	case uri == "/slow":
		a.started <- uri
		<-ctx.Done()
		a.cancelled.Add(1)
		return nil, ctx.Err()
	case uri == "/hold":
		a.started <- uri
		select {
		case <-a.release:
		case <-ctx.Done():
		}
		return agent.Allow(), nil
	case uri == "/config":
		peer := agent.PeerFromContext(ctx)
		resp, err := peer.RequestConfigUpdate(ctx, &agentv2.ConfigUpdateRequest{
			RequestId:  "cfg-1",
			UpdateType: &agentv2.ConfigUpdateRequest_RequestReload{RequestReload: &agentv2.RequestReload{}},
		})
		if err != nil {
			return nil, err
		}
		r := agent.Allow()
		r.RequestHeaders = append(r.RequestHeaders, agent.SetHeader("x-config-accepted", strconv.FormatBool(resp.GetAccepted())))
		return r, nil
	case strings.HasPrefix(uri, "/n/"):
		// Vary the handling time so answers come back out of order.
		n, _ := strconv.Atoi(strings.TrimPrefix(uri, "/n/"))
		if n%7 == 0 {
			time.Sleep(time.Duration(n%5) * time.Millisecond)
		}
		r := agent.Allow()
		r.RequestHeaders = append(r.RequestHeaders, agent.SetHeader("x-n", strconv.Itoa(n)))
		return r, nil
	}
	r := agent.Allow()
	r.RequestHeaders = append(r.RequestHeaders, agent.SetHeader("x-agent", "suite"), agent.RemoveHeader("cookie"))
	r.ResponseHeaders = append(r.ResponseHeaders, agent.AddHeader("x-seen", "1"))
	return r, nil
}

func (a *suiteAgent) RequestBodyChunk(ctx context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	if ev.GetChunkIndex()%2 == 0 {
		time.Sleep(2 * time.Millisecond) // give a later chunk a chance to overtake
	}
	r := agent.Allow()
	r.RequestHeaders = append(r.RequestHeaders, agent.SetHeader("x-chunk", strconv.Itoa(int(ev.GetChunkIndex()))))
	return r, nil
}

func (a *suiteAgent) ResponseHeaders(ctx context.Context, ev *agentv2.ResponseHeadersEvent) (*agentv2.AgentResponse, error) {
	r := agent.Allow()
	r.ResponseHeaders = append(r.ResponseHeaders, agent.SetHeader("x-status", strconv.Itoa(int(ev.GetStatusCode()))))
	return r, nil
}

func (a *suiteAgent) ResponseBodyChunk(ctx context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	if strings.Contains(string(ev.GetData()), "secret") {
		return agent.Block(502, "leak"), nil
	}
	return nil, nil
}

func (a *suiteAgent) WebSocketFrame(ctx context.Context, ev *agentv2.WebSocketFrameEvent) (*agentv2.AgentResponse, error) {
	if string(ev.GetPayload()) == "evil" {
		return agent.Block(1008, "policy"), nil
	}
	return nil, nil
}

func (a *suiteAgent) GuardrailInspect(ctx context.Context, ev *agentv2.GuardrailInspectEvent) (*agentv2.AgentResponse, error) {
	if strings.Contains(ev.GetContent(), "ignore previous instructions") {
		r := agent.Block(400, "prompt injection")
		r.Audit = agent.Audit([]string{"prompt-injection"})
		return r, nil
	}
	return nil, nil
}

func (a *suiteAgent) Configure(ctx context.Context, ev *agentv2.ConfigureEvent) error {
	if ev.GetConfigJson() == "bad" {
		return agentwire.Errorf(agentwire.CodeInvalidArgument, "bad config")
	}
	return nil
}

func (a *suiteAgent) Drain(context.Context, *agentv2.DrainRequest) { a.drained.Add(1) }

func (a *suiteAgent) Metrics(context.Context) *agentv2.MetricsReport {
	return &agentv2.MetricsReport{Counters: []*agentv2.CounterMetric{{Name: "suite_events_total", Value: 7}}}
}

// fixture is one agent serving one transport, and a way to dial it.
type fixture struct {
	agent *suiteAgent
	srv   *agent.Server
	dial  func(ctx context.Context, opts ...transport.Option) (transport.Conn, error)
	// kill makes the agent vanish abruptly (connections reset).
	kill func()
}

// harness builds a fixture for one transport.
type harness struct {
	name  string
	setup func(t *testing.T, agentOpts ...agent.Option) *fixture
}

func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func newServer(t *testing.T, opts ...agent.Option) (*suiteAgent, *agent.Server) {
	t.Helper()
	a := newSuiteAgent()
	base := []agent.Option{agent.WithAgentID("suite-agent"), agent.WithName("suite")}
	srv, err := agent.NewServer(a, append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		select {
		case <-a.release:
		default:
			close(a.release)
		}
		srv.Close()
	})
	return a, srv
}

func serveUnix(t *testing.T, srv *agent.Server) string {
	t.Helper()
	path := filepath.Join(shortTempDir(t), "agent.sock")
	ln, err := srv.ListenUnix(path)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeUnix(context.Background(), ln)
	}()
	t.Cleanup(func() { srv.Close(); <-done })
	return path
}

var harnesses = []harness{
	{name: "uds", setup: func(t *testing.T, opts ...agent.Option) *fixture {
		a, srv := newServer(t, opts...)
		path := serveUnix(t, srv)
		return &fixture{agent: a, srv: srv,
			dial: func(ctx context.Context, o ...transport.Option) (transport.Conn, error) {
				return transport.DialUnix(ctx, path, o...)
			},
			kill: func() { srv.Close() },
		}
	}},
	{name: "uds-noecho", setup: func(t *testing.T, opts ...agent.Option) *fixture {
		a, srv := newServer(t, opts...)
		path := serveUnix(t, srv)
		relay := startNoEchoRelay(t, path)
		return &fixture{agent: a, srv: srv,
			dial: func(ctx context.Context, o ...transport.Option) (transport.Conn, error) {
				return transport.DialUnix(ctx, relay, o...)
			},
			kill: func() { srv.Close() },
		}
	}},
	{name: "grpc", setup: func(t *testing.T, opts ...agent.Option) *fixture {
		a, srv := newServer(t, opts...)
		gs := grpc.NewServer(agent.GRPCServerOptions()...)
		srv.RegisterGRPC(gs)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		done := make(chan struct{})
		go func() { defer close(done); _ = gs.Serve(ln) }()
		t.Cleanup(func() { gs.Stop(); <-done })
		return &fixture{agent: a, srv: srv,
			dial: func(ctx context.Context, o ...transport.Option) (transport.Conn, error) {
				return transport.DialGRPC(ctx, ln.Addr().String(), o...)
			},
			kill: func() { gs.Stop(); srv.Close() },
		}
	}},
	{name: "connect", setup: func(t *testing.T, opts ...agent.Option) *fixture {
		a, srv := newServer(t, opts...)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		hs := &http.Server{Handler: srv.HTTPHandler(), Protocols: new(http.Protocols)}
		hs.Protocols.SetUnencryptedHTTP2(true)
		hs.Protocols.SetHTTP1(true)
		done := make(chan struct{})
		go func() { defer close(done); _ = hs.Serve(ln) }()
		t.Cleanup(func() { hs.Close(); <-done })
		return &fixture{agent: a, srv: srv,
			dial: func(ctx context.Context, o ...transport.Option) (transport.Conn, error) {
				return transport.DialConnect(ctx, "http://"+ln.Addr().String(), o...)
			},
			kill: func() { hs.Close(); srv.Close() },
		}
	}},
	{name: "connect-tls", setup: func(t *testing.T, opts ...agent.Option) *fixture {
		// HTTP/2 negotiated by ALPN, with net/http's default settings
		// (it announces 1 MiB frames, which the client caps).
		a, srv := newServer(t, opts...)
		ca := newTestCA(t, "connect-tls")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		hs := &http.Server{Handler: srv.HTTPHandler(), TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{ca.issue(t, "agent", true)}, MinVersion: tls.VersionTLS12}}
		done := make(chan struct{})
		go func() { defer close(done); _ = hs.ServeTLS(ln, "", "") }()
		t.Cleanup(func() { hs.Close(); <-done })
		return &fixture{agent: a, srv: srv,
			dial: func(ctx context.Context, o ...transport.Option) (transport.Conn, error) {
				o = append([]transport.Option{transport.WithTLSConfig(&tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12})}, o...)
				return transport.DialConnect(ctx, "https://"+ln.Addr().String(), o...)
			},
			kill: func() { hs.Close(); srv.Close() },
		}
	}},
}

// startNoEchoRelay forwards a framed connection to the agent, removing event
// ids and the echo capability from everything the agent sends: the agent
// then looks exactly like one built from the plain Sentinel proto.
func startNoEchoRelay(t *testing.T, target string) string {
	t.Helper()
	path := filepath.Join(shortTempDir(t), "relay.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", target)
			if err != nil {
				down.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, down, up)
			mu.Unlock()
			wg.Add(2)
			// Only the proxy-to-agent copy closes the sockets, once it
			// has read all the proxy sent: closing down sooner (say,
			// because the proxy closed before reading the agent's last
			// frames) would drop the proxy's last frames unread.
			go func() {
				defer wg.Done()
				_, _ = io.Copy(up, down)
				up.Close()
				down.Close()
			}()
			go func() {
				defer wg.Done()
				r := codec.NewReader(up, 0)
				var m agentv2.AgentToProxy
				for {
					if err := r.ReadAgentToProxy(&m); err != nil {
						// The agent is gone: so is the proxy's peer.
						_ = down.(*net.UnixConn).CloseWrite()
						return
					}
					m.EventId = 0
					if f := m.GetHandshake().GetCapabilities().GetFeatures(); f != nil {
						f.EchoesEventId = false
					}
					if err := codec.WriteFrameTo(down, &m, 0); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return path
}

func dial(t *testing.T, f *fixture, opts ...transport.Option) transport.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := f.dial(ctx, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, c.Close(ctx))
	})
	return c
}

func headers(corr, method, uri string, hdrs ...string) *agentv2.ProxyToAgent {
	ev := &agentv2.RequestHeadersEvent{
		Metadata:    &agentv2.RequestMetadata{CorrelationId: corr, RequestId: corr, ClientIp: "192.0.2.1", Protocol: "HTTP/1.1"},
		Method:      method,
		Uri:         uri,
		HttpVersion: "HTTP/1.1",
	}
	for i := 0; i+1 < len(hdrs); i += 2 {
		ev.Headers = append(ev.Headers, &agentv2.Header{Name: hdrs[i], Value: hdrs[i+1]})
	}
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: ev}}
}

func bodyChunk(corr string, index uint32, data string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: corr, ChunkIndex: index, Data: []byte(data),
	}}}
}

func headerOp(ops []*agentv2.HeaderOp, name string) string {
	for _, op := range ops {
		if s := op.GetSet(); s != nil && s.GetName() == name {
			return s.GetValue()
		}
		if s := op.GetAdd(); s != nil && s.GetName() == name {
			return s.GetValue()
		}
	}
	return ""
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestSuite(t *testing.T) {
	t.Parallel()
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			runSuite(t, h)
		})
	}
}

func runSuite(t *testing.T, h harness) {
	t.Run("Handshake", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t)
		c := dial(t, f)
		caps := c.Capabilities()
		assert.Equal(t, uint32(2), caps.GetProtocolVersion())
		assert.Equal(t, "suite-agent", caps.GetAgentId())
		assert.Equal(t, transport.StateReady, c.Status().State)
	})
	t.Run("VersionRejected", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t)
		_, err := f.dial(ctxT(t, 5*time.Second), transport.WithProtocolVersions(99))
		require.Error(t, err)
		assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(err), "%v", err)
		assert.ErrorIs(t, err, transport.ErrHandshakeRejected)
		var e *agentwire.Error
		assert.ErrorAs(t, err, &e)
	})
	t.Run("EventKinds", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t)
		c := dial(t, f)
		ctx := ctxT(t, 10*time.Second)
		type check func(t *testing.T, r *agentv2.AgentResponse)
		cases := []struct {
			name  string
			event *agentv2.ProxyToAgent
			check check
		}{
			{"allow with mutations", headers("c1", "GET", "/index", "cookie", "a=b"), func(t *testing.T, r *agentv2.AgentResponse) {
				assert.NotNil(t, r.GetAllow())
				assert.Equal(t, "suite", headerOp(r.GetRequestHeaders(), "x-agent"))
				assert.Equal(t, "1", headerOp(r.GetResponseHeaders(), "x-seen"))
				var removed bool
				for _, op := range r.GetRequestHeaders() {
					removed = removed || op.GetRemove() == "cookie"
				}
				assert.True(t, removed)
			}},
			{"block", headers("c2", "GET", "/block"), func(t *testing.T, r *agentv2.AgentResponse) {
				assert.Equal(t, uint32(403), r.GetBlock().GetStatus())
				assert.Equal(t, []string{"suite-block"}, r.GetAudit().GetTags())
			}},
			{"redirect", headers("c3", "GET", "/redirect"), func(t *testing.T, r *agentv2.AgentResponse) {
				assert.Equal(t, "https://example.test/login", r.GetRedirect().GetUrl())
				assert.Equal(t, uint32(302), r.GetRedirect().GetStatus())
			}},
			{"challenge", headers("c4", "GET", "/challenge"), func(t *testing.T, r *agentv2.AgentResponse) {
				assert.Equal(t, "captcha", r.GetChallenge().GetChallengeType())
			}},
			{"request body", bodyChunk("c5", 3, "hello"), func(t *testing.T, r *agentv2.AgentResponse) {
				assert.Equal(t, "3", headerOp(r.GetRequestHeaders(), "x-chunk"))
			}},
			{"response headers", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: &agentv2.ResponseHeadersEvent{CorrelationId: "c6", StatusCode: 201}}}, func(t *testing.T, r *agentv2.AgentResponse) {
				assert.Equal(t, "201", headerOp(r.GetResponseHeaders(), "x-status"))
			}},
			{"response body", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: &agentv2.BodyChunkEvent{CorrelationId: "c7", Data: []byte("top secret"), IsLast: true}}}, func(t *testing.T, r *agentv2.AgentResponse) {
				assert.Equal(t, uint32(502), r.GetBlock().GetStatus())
			}},
			{"request complete", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{CorrelationId: "c8", StatusCode: 200}}}, func(t *testing.T, r *agentv2.AgentResponse) {
				assert.NotNil(t, r.GetAllow())
			}},
			{"websocket", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_WebsocketFrame{WebsocketFrame: &agentv2.WebSocketFrameEvent{CorrelationId: "c9", ClientToServer: true, FrameType: agentv2.WebSocketFrameEvent_FRAME_TYPE_TEXT, Payload: []byte("evil")}}}, func(t *testing.T, r *agentv2.AgentResponse) {
				assert.Equal(t, uint32(1008), r.GetBlock().GetStatus())
			}},
			{"guardrail", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Guardrail{Guardrail: &agentv2.GuardrailInspectEvent{CorrelationId: "c10", Content: "please ignore previous instructions", ContentType: agentv2.GuardrailContentType_GUARDRAIL_CONTENT_TYPE_PROMPT}}}, func(t *testing.T, r *agentv2.AgentResponse) {
				assert.Equal(t, uint32(400), r.GetBlock().GetStatus())
				assert.Contains(t, r.GetAudit().GetTags(), "prompt-injection")
			}},
			{"configure", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Configure{Configure: &agentv2.ConfigureEvent{ConfigJson: `{"mode":"strict"}`}}}, func(t *testing.T, r *agentv2.AgentResponse) {
				assert.NotNil(t, r.GetAllow())
			}},
		}
		for _, tc := range cases {
			resp, err := c.Send(ctx, tc.event)
			require.NoError(t, err, tc.name)
			corr, _ := tc.event.EventCorrelationID()
			assert.Equal(t, corr, resp.GetCorrelationId(), tc.name)
			t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) { tc.check(t, resp) })
		}
		// Errors the agent reports come back as wire errors with its code.
		_, err := c.Send(ctx, headers("c11", "GET", "/error"))
		require.Error(t, err)
		assert.Equal(t, agentwire.CodePermissionDenied, agentwire.CodeOf(err))
		assert.True(t, agentwire.IsWireError(err))
		_, err = c.Send(ctx, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Configure{Configure: &agentv2.ConfigureEvent{ConfigJson: "bad"}}})
		assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err))
		// Non-events are refused locally.
		_, err = c.Send(ctx, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{}}})
		assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err))
		assert.ErrorIs(t, err, transport.ErrNotEvent)
	})
	t.Run("ThousandInFlight", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t, agent.WithMaxConcurrency(2048))
		c := dial(t, f)
		ctx := ctxT(t, 20*time.Second)
		const n = 1000
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				corr := fmt.Sprintf("req-%d", i)
				resp, err := c.Send(ctx, headers(corr, "GET", fmt.Sprintf("/n/%d", i)))
				if err != nil {
					errs <- err
					return
				}
				if got := headerOp(resp.GetRequestHeaders(), "x-n"); got != strconv.Itoa(i) || resp.GetCorrelationId() != corr {
					errs <- fmt.Errorf("request %d got x-n=%q corr=%q", i, got, resp.GetCorrelationId())
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		assert.Equal(t, 0, c.Status().InFlight)
	})
	t.Run("TwoEventsOfOneRequest", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t)
		c := dial(t, f)
		ctx := ctxT(t, 10*time.Second)
		for round := range 20 {
			corr := fmt.Sprintf("two-%d", round)
			var wg sync.WaitGroup
			for idx := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := c.Send(ctx, bodyChunk(corr, uint32(idx), "x"))
					if assert.NoError(t, err) {
						assert.Equal(t, strconv.Itoa(idx), headerOp(resp.GetRequestHeaders(), "x-chunk"))
					}
				}()
			}
			wg.Wait()
		}
	})
	t.Run("AgentKilled", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t)
		c := dial(t, f)
		const n = 50
		type outcome struct {
			err error
			at  time.Time
		}
		out := make(chan outcome, n)
		for i := range n {
			go func() {
				_, err := c.Send(context.Background(), headers(fmt.Sprintf("k-%d", i), "GET", "/hold"))
				out <- outcome{err, time.Now()}
			}()
		}
		for range n {
			<-f.agent.started
		}
		killed := time.Now()
		f.kill()
		for range n {
			o := <-out
			require.Error(t, o.err)
			assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(o.err), "%v", o.err)
			assert.Less(t, o.at.Sub(killed), 100*time.Millisecond)
		}
		select {
		case <-c.Done():
		case <-time.After(time.Second):
			t.Fatal("Done not closed after the agent died")
		}
		assert.Equal(t, transport.StateClosed, c.Status().State)
		assert.Equal(t, 0, c.Status().InFlight)
		_, err := c.Send(context.Background(), headers("after", "GET", "/"))
		assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))
	})
	t.Run("PauseResume", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t, agent.WithMaxConcurrency(2))
		c := dial(t, f)
		ctx := ctxT(t, 10*time.Second)
		results := make(chan error, 2)
		for i := range 2 {
			go func() {
				_, err := c.Send(ctx, headers(fmt.Sprintf("p-%d", i), "GET", "/hold"))
				results <- err
			}()
		}
		require.Eventually(t, func() bool { return c.Paused("") }, 5*time.Second, time.Millisecond)
		assert.Equal(t, transport.StatePaused, c.Status().State)
		waited := make(chan error, 1)
		go func() { waited <- c.WaitResume(ctx, "any") }()
		select {
		case err := <-waited:
			t.Fatalf("WaitResume returned while paused: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		close(f.agent.release)
		require.NoError(t, <-waited)
		for range 2 {
			require.NoError(t, <-results)
		}
		assert.False(t, c.Paused(""))
	})
	t.Run("HealthAndMetrics", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t)
		health := make(chan *agentv2.HealthStatus, 16)
		metrics := make(chan *agentv2.MetricsReport, 16)
		c := dial(t, f,
			transport.WithHealthInterval(50*time.Millisecond),
			transport.WithHealthHandler(func(h *agentv2.HealthStatus) {
				select {
				case health <- h:
				default:
				}
			}),
			transport.WithMetricsHandler(func(m *agentv2.MetricsReport) {
				select {
				case metrics <- m:
				default:
				}
			}))
		for range 3 { // several reports: it is periodic
			select {
			case h := <-health:
				assert.Equal(t, agentv2.HealthState_HEALTH_STATE_HEALTHY, h.GetState())
				assert.NotNil(t, h.GetLoad())
			case <-time.After(3 * time.Second):
				t.Fatal("no health report")
			}
		}
		select {
		case m := <-metrics:
			require.Len(t, m.GetCounters(), 1)
			assert.Equal(t, uint64(7), m.GetCounters()[0].GetValue())
		case <-time.After(3 * time.Second):
			t.Fatal("no metrics report")
		}
		assert.Equal(t, agentv2.HealthState_HEALTH_STATE_HEALTHY, c.Status().Health)
		rtt, err := c.Ping(ctxT(t, 5*time.Second))
		require.NoError(t, err)
		assert.Positive(t, rtt)
	})
	t.Run("ConfigUpdate", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t)
		got := make(chan *agentv2.ConfigUpdateRequest, 1)
		c := dial(t, f, transport.WithConfigUpdateHandler(func(ctx context.Context, req *agentv2.ConfigUpdateRequest) *agentv2.ConfigUpdateResponse {
			got <- req
			return &agentv2.ConfigUpdateResponse{Accepted: true}
		}))
		resp, err := c.Send(ctxT(t, 5*time.Second), headers("cfg", "GET", "/config"))
		require.NoError(t, err)
		assert.Equal(t, "true", headerOp(resp.GetRequestHeaders(), "x-config-accepted"))
		req := <-got
		assert.Equal(t, "cfg-1", req.GetRequestId())
		assert.NotNil(t, req.GetRequestReload())
	})
	t.Run("Cancel", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t)
		c := dial(t, f)
		ctx := ctxT(t, 10*time.Second)
		done := make(chan error, 1)
		go func() {
			_, err := c.Send(ctx, headers("cx", "GET", "/slow"))
			done <- err
		}()
		<-f.agent.started
		require.NoError(t, c.Cancel(ctx, &agentv2.CancelRequest{CorrelationId: "cx", Reason: agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT}))
		err := <-done
		assert.Equal(t, agentwire.CodeCanceled, agentwire.CodeOf(err))
		require.Eventually(t, func() bool { return f.agent.cancelled.Load() == 1 }, 5*time.Second, time.Millisecond)
		// The connection is fine afterwards.
		_, err = c.Send(ctx, headers("cy", "GET", "/"))
		require.NoError(t, err)
		assert.Equal(t, transport.StateReady, c.Status().State)

		// A caller's own context cancellation is Canceled too.
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			<-f.agent.started
			cancel()
		}()
		_, err = c.Send(cctx, headers("cz", "GET", "/slow"))
		assert.Equal(t, agentwire.CodeCanceled, agentwire.CodeOf(err))
		assert.False(t, agentwire.IsWireError(err))
		_, err = c.Send(ctx, headers("cw", "GET", "/"))
		require.NoError(t, err)
	})
	t.Run("Deadline", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t)
		c := dial(t, f, transport.WithCallTimeout(250*time.Millisecond))
		start := time.Now()
		_, err := c.Send(context.Background(), headers("dl", "GET", "/hold"))
		assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err))
		assert.Less(t, time.Since(start), 2*time.Second)
		assert.Equal(t, 0, c.Status().InFlight)
		// Calls and their timers are reused: the expired one must not cut
		// later calls short.
		for i := range 20 {
			_, err := c.Send(context.Background(), headers(fmt.Sprint("dl-ok-", i), "GET", "/"))
			require.NoError(t, err)
		}
	})
	t.Run("Oversize", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t)
		c := dial(t, f, transport.WithMaxFrameSize(64<<10))
		ctx := ctxT(t, 5*time.Second)
		_, err := c.Send(ctx, bodyChunk("big", 0, strings.Repeat("x", 100<<10)))
		require.Error(t, err)
		assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(err))
		assert.True(t, errors.Is(err, codec.ErrFrameTooLarge))
		resp, err := c.Send(ctx, bodyChunk("small", 1, "ok"))
		require.NoError(t, err)
		assert.Equal(t, "1", headerOp(resp.GetRequestHeaders(), "x-chunk"))
	})
	t.Run("Drain", func(t *testing.T) {
		t.Parallel()
		f := h.setup(t)
		c := dial(t, f)
		err := c.Notify(ctxT(t, 5*time.Second), &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Drain{Drain: &agentv2.DrainRequest{DurationMs: 1000}}})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return f.agent.drained.Load() == 1 }, 5*time.Second, time.Millisecond)
	})
	t.Run("NoticeThenClose", func(t *testing.T) {
		// A notice sent just before Close reaches the agent, on every
		// transport; repeated, as losing it is a race.
		t.Parallel()
		f := h.setup(t)
		for i := range 20 {
			c := dial(t, f)
			err := c.Notify(ctxT(t, 5*time.Second), &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Drain{Drain: &agentv2.DrainRequest{DurationMs: 1000}}})
			require.NoError(t, err)
			require.NoError(t, c.Close(ctxT(t, 5*time.Second)))
			require.Eventually(t, func() bool { return f.agent.drained.Load() == int32(i+1) }, 2*time.Second, time.Millisecond,
				"the drain notice sent before Close number %d was lost", i+1)
		}
	})
}
