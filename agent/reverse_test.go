package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// fakeProxy is a reverse listener written by hand: it reads each
// connection's registration and hands the connection to the test.
type fakeProxy struct {
	addr  string // as the dialer wants it
	conns chan *proxySide
}

// proxySide is the proxy's end of one reverse connection.
type proxySide struct {
	t   *testing.T
	nc  net.Conn
	r   *codec.Reader
	reg *agentv2.RegistrationRequest
}

func startFakeProxy(t *testing.T, network string) *fakeProxy {
	t.Helper()
	var ln net.Listener
	var err error
	p := &fakeProxy{conns: make(chan *proxySide, 64)}
	if network == "unix" {
		path := socketPath(t)
		ln, err = net.Listen("unix", path)
		p.addr = "unix://" + path
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		p.addr = "tcp://" + ln.Addr().String()
	}
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := codec.NewReader(nc, 0)
				var m agentv2.AgentToProxy
				if err := r.ReadAgentToProxy(&m); err != nil || m.GetRegistration() == nil {
					_ = nc.Close()
					return
				}
				p.conns <- &proxySide{t: t, nc: nc, r: r, reg: m.GetRegistration()}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *fakeProxy) next(t *testing.T) *proxySide {
	t.Helper()
	select {
	case s := <-p.conns:
		return s
	case <-time.After(waitTimeout):
		t.Fatal("no registration arrived")
	}
	return nil
}

func registrationAnswer(resp *agentv2.RegistrationResponse) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RegistrationResponse{RegistrationResponse: resp}}
}

// accept answers the registration and sends the handshake in the same
// write, so an agent that read more than its answer would lose it; then it
// checks the agent's handshake response.
func (s *proxySide) accept(connID string) {
	s.t.Helper()
	buf, err := codec.AppendFrame(nil, registrationAnswer(&agentv2.RegistrationResponse{Accepted: true, ConnectionId: connID, ProxyId: "fake"}), 0)
	require.NoError(s.t, err)
	buf, err = codec.AppendFrame(buf, handshakeMsg(0), 0)
	require.NoError(s.t, err)
	_, err = s.nc.Write(buf)
	require.NoError(s.t, err)
	hs := s.recv(func(m *agentv2.AgentToProxy) bool { return m.GetHandshake() != nil }).GetHandshake()
	require.True(s.t, hs.GetSuccess(), hs.GetError())
}

func (s *proxySide) reject(text string) {
	s.t.Helper()
	require.NoError(s.t, codec.WriteFrameTo(s.nc, registrationAnswer(&agentv2.RegistrationResponse{Error: &text}), 0))
	_ = s.nc.Close()
}

func (s *proxySide) recv(match func(*agentv2.AgentToProxy) bool) *agentv2.AgentToProxy {
	s.t.Helper()
	require.NoError(s.t, s.nc.SetReadDeadline(time.Now().Add(waitTimeout)))
	for {
		var m agentv2.AgentToProxy
		require.NoError(s.t, s.r.ReadAgentToProxy(&m))
		if match(&m) {
			return &m
		}
	}
}

// closedByAgent waits for the agent to close the connection.
func (s *proxySide) closedByAgent() {
	s.t.Helper()
	require.NoError(s.t, s.nc.SetReadDeadline(time.Now().Add(waitTimeout)))
	for {
		var m agentv2.AgentToProxy
		if err := s.r.ReadAgentToProxy(&m); err != nil {
			var ne net.Error
			require.False(s.t, errors.As(err, &ne) && ne.Timeout(), "agent kept the connection open")
			return
		}
	}
}

type allowHandler struct{ Base }

func (allowHandler) RequestHeaders(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	r := Allow()
	r.RequestHeaders = []*agentv2.HeaderOp{SetHeader("x-reverse", "yes")}
	return r, nil
}

// runDialer runs a dialer until the test ends.
func runDialer(t *testing.T, d *ReverseDialer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		require.NoError(t, d.Close(ctx))
		require.NoError(t, <-done)
	})
}

// dialErrors collects what a dialer's error handler is told.
type dialErrors struct {
	mu    sync.Mutex
	errs  []error
	waits []time.Duration
}

func (e *dialErrors) handler(err error, wait time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, err)
	e.waits = append(e.waits, wait)
}

func (e *dialErrors) snapshot() ([]error, []time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.errs...), append([]time.Duration(nil), e.waits...)
}

func (e *dialErrors) waitFor(t *testing.T, n int) ([]error, []time.Duration) {
	t.Helper()
	eventually(t, func() bool { errs, _ := e.snapshot(); return len(errs) >= n }, "dial errors")
	errs, waits := e.snapshot()
	return errs[:n], waits[:n]
}

func TestReverseDialerRegistersAndServes(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			p := startFakeProxy(t, network)
			srv := newTestServer(t, allowHandler{}, WithAgentID("waf-7"), WithName("waf"), WithVersion("1.2.3"),
				WithSupportedEvents(agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS))
			t.Cleanup(srv.Close)
			registered := make(chan *agentv2.RegistrationResponse, 4)
			d, err := NewReverseDialer(srv, p.addr,
				WithAgentToken("s3cret"),
				WithRegistrationMetadata(map[string]string{"zone": "eu-1"}),
				WithRegistrationHandler(func(r *agentv2.RegistrationResponse) { registered <- r }))
			require.NoError(t, err)
			runDialer(t, d)

			s := p.next(t)
			assert.Equal(t, uint32(2), s.reg.GetProtocolVersion())
			assert.Equal(t, "waf-7", s.reg.GetAgentId())
			assert.Equal(t, "s3cret", s.reg.GetAuthToken())
			assert.Equal(t, map[string]string{"zone": "eu-1"}, s.reg.GetMetadata())
			caps := s.reg.GetCapabilities()
			assert.Equal(t, "waf-7", caps.GetAgentId())
			assert.Equal(t, "waf", caps.GetName())
			assert.Equal(t, "1.2.3", caps.GetVersion())
			assert.Equal(t, []agentv2.EventType{agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS}, caps.GetSupportedEvents())
			assert.True(t, caps.GetFeatures().GetEchoesEventId())

			s.accept("conn-1")
			select {
			case r := <-registered:
				assert.Equal(t, "conn-1", r.GetConnectionId())
				assert.Equal(t, "fake", r.GetProxyId())
			case <-time.After(waitTimeout):
				t.Fatal("registration handler not called")
			}
			require.NoError(t, codec.WriteFrameTo(s.nc, requestHeaders(41, "req-1"), 0))
			resp := s.recv(func(m *agentv2.AgentToProxy) bool { return m.GetResponse() != nil })
			assert.Equal(t, uint64(41), resp.GetEventId())
			assert.Equal(t, "req-1", resp.GetResponse().GetCorrelationId())
			assert.Equal(t, "yes", resp.GetResponse().GetRequestHeaders()[0].GetSet().GetValue())
			eventually(t, func() bool { return d.Stats().Connected == 1 }, "connected")
			assert.Equal(t, uint64(1), d.Stats().Registered)

			// Close ends the connection and Run.
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			require.NoError(t, d.Close(ctx))
			s.closedByAgent()
			assert.Zero(t, d.Stats().Connected)
			assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(d.Run(context.Background())))
		})
	}
}

// TestReverseDialerBackoff: refused dials back off exponentially, with the
// jitter from the injected source, capped at the maximum.
func TestReverseDialerBackoff(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := "tcp://" + ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	t.Run("LowestJitter", func(t *testing.T) {
		t.Parallel()
		srv := newTestServer(t, Base{})
		t.Cleanup(srv.Close)
		var got dialErrors
		d, err := NewReverseDialer(srv, addr, WithReconnectBackoff(10*time.Millisecond, 80*time.Millisecond),
			WithRand(func() uint64 { return 0 }), WithDialErrorHandler(got.handler))
		require.NoError(t, err)
		runDialer(t, d)
		errs, waits := got.waitFor(t, 6)
		ms := time.Millisecond
		assert.Equal(t, []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 40 * ms, 40 * ms}, waits)
		for _, err := range errs {
			assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err), "%v", err)
		}
		assert.GreaterOrEqual(t, d.Stats().Failed, uint64(6))
	})
	t.Run("JitterWithinBounds", func(t *testing.T) {
		t.Parallel()
		srv := newTestServer(t, Base{})
		t.Cleanup(srv.Close)
		var got dialErrors
		d, err := NewReverseDialer(srv, addr, WithReconnectBackoff(2*time.Millisecond, 16*time.Millisecond),
			WithDialErrorHandler(got.handler))
		require.NoError(t, err)
		runDialer(t, d)
		_, waits := got.waitFor(t, 12)
		distinct := map[time.Duration]bool{}
		for i, w := range waits {
			ceiling := min(2*time.Millisecond<<i, 16*time.Millisecond)
			assert.GreaterOrEqual(t, w, ceiling/2, "wait %d", i)
			assert.LessOrEqual(t, w, ceiling, "wait %d", i)
			distinct[w] = true
		}
		assert.Greater(t, len(distinct), 3, "no jitter: %v", waits)
	})
}

// TestReverseDialerRejected: refusals are typed; those a retry cannot fix
// wait the longest backoff from the first attempt, a capacity refusal from
// the second.
func TestReverseDialerRejected(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	long := []time.Duration{20 * ms, 20 * ms}
	cases := []struct {
		answer string
		code   agentwire.Code
		waits  []time.Duration
	}{
		{"unauthenticated: invalid auth token", agentwire.CodeUnauthenticated, long},
		{"permission_denied: agent id not allowed", agentwire.CodePermissionDenied, long},
		{"failed_precondition: protocol version 2 not supported", agentwire.CodeFailedPrecondition, long},
		{"invalid_argument: empty agent id", agentwire.CodeInvalidArgument, long},
		{"go away", agentwire.CodeUnknown, long},
		{"resource_exhausted: agent already holds 4 connections", agentwire.CodeResourceExhausted, []time.Duration{5 * ms, 20 * ms}},
		{"unavailable: reverse listener closed", agentwire.CodeUnavailable, []time.Duration{5 * ms, 10 * ms}},
	}
	for _, tc := range cases {
		t.Run(tc.code.String(), func(t *testing.T) {
			t.Parallel()
			p := startFakeProxy(t, "tcp")
			srv := newTestServer(t, Base{})
			t.Cleanup(srv.Close)
			var got dialErrors
			d, err := NewReverseDialer(srv, p.addr, WithReconnectBackoff(10*time.Millisecond, 40*time.Millisecond),
				WithRand(func() uint64 { return 0 }), WithDialErrorHandler(got.handler))
			require.NoError(t, err)
			runDialer(t, d)
			for range 2 {
				p.next(t).reject(tc.answer)
			}
			errs, waits := got.waitFor(t, 2)
			_, reason, ok := strings.Cut(tc.answer, ": ")
			if !ok {
				reason = tc.answer
			}
			for _, err := range errs {
				assert.ErrorIs(t, err, ErrRegistrationRejected)
				assert.True(t, strings.HasSuffix(err.Error(), ": "+reason), "%v", err)
				assert.Equal(t, tc.code, agentwire.CodeOf(err))
				assert.False(t, agentwire.IsWireError(err))
			}
			assert.Equal(t, tc.waits, waits)
			assert.GreaterOrEqual(t, d.Stats().Rejected, uint64(2))
			assert.Zero(t, d.Stats().Registered)
		})
	}
}

// TestReverseDialerRefusalStreak: refusals in a row are logged once, as a
// warning, and counted in Stats while they last; a registration that gets
// through ends the streak.
func TestReverseDialerRefusalStreak(t *testing.T) {
	t.Parallel()
	p := startFakeProxy(t, "unix")
	var logs logRecords
	srv := newTestServer(t, Base{}, WithLogger(slog.New(&logs)))
	t.Cleanup(srv.Close)
	var got dialErrors
	d, err := NewReverseDialer(srv, p.addr, WithReconnectBackoff(time.Millisecond, 4*time.Millisecond),
		WithDialErrorHandler(got.handler))
	require.NoError(t, err)
	runDialer(t, d)
	for range 4 {
		p.next(t).reject("resource_exhausted: full")
	}
	got.waitFor(t, 4)
	assert.Equal(t, 1, d.Stats().Refused)
	p.next(t).accept("c")
	eventually(t, func() bool { st := d.Stats(); return st.Connected == 1 && st.Refused == 0 }, "registered")
	warns := logs.messages(slog.LevelWarn)
	require.Len(t, warns, 1, "one warning for four refusals")
	assert.Equal(t, "agent: proxy refused registration; retrying with backoff", warns[0])
	eventually(t, func() bool { return len(logs.messages(slog.LevelInfo)) == 1 }, "streak ended")
}

// logRecords is a slog handler that keeps each record's level and message.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecords) WithGroup(string) slog.Handler            { return h }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}

// messages returns the messages logged at level whose text mentions the
// proxy.
func (h *logRecords) messages(level slog.Level) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		if r.Level == level && strings.Contains(r.Message, "proxy") {
			out = append(out, r.Message)
		}
	}
	return out
}

// TestReverseDialerUnstableProxy: a proxy that accepts and drops at once is
// retried ever more slowly; a connection that lasted resets the backoff.
func TestReverseDialerUnstableProxy(t *testing.T) {
	t.Parallel()
	for name, stable := range map[string]time.Duration{"Unstable": time.Hour, "Stable": 0} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := startFakeProxy(t, "tcp")
			srv := newTestServer(t, Base{})
			t.Cleanup(srv.Close)
			var got dialErrors
			d, err := NewReverseDialer(srv, p.addr, WithReconnectBackoff(4*time.Millisecond, 64*time.Millisecond),
				WithRand(func() uint64 { return 0 }), WithDialErrorHandler(got.handler))
			require.NoError(t, err)
			d.cfg.stableAfter = stable
			runDialer(t, d)
			for range 4 {
				s := p.next(t)
				s.accept("c")
				_ = s.nc.Close()
			}
			_, waits := got.waitFor(t, 4)
			ms := time.Millisecond
			if stable == 0 {
				assert.Equal(t, []time.Duration{2 * ms, 2 * ms, 2 * ms, 2 * ms}, waits)
			} else {
				assert.Equal(t, []time.Duration{2 * ms, 4 * ms, 8 * ms, 16 * ms}, waits)
			}
			assert.GreaterOrEqual(t, d.Stats().Registered, uint64(4))
		})
	}
}

// TestReverseDialerConnections: the dialer holds N connections and
// replaces one that drops without touching the others.
func TestReverseDialerConnections(t *testing.T) {
	t.Parallel()
	p := startFakeProxy(t, "unix")
	srv := newTestServer(t, allowHandler{})
	t.Cleanup(srv.Close)
	d, err := NewReverseDialer(srv, p.addr, WithConnections(3), WithReconnectBackoff(time.Millisecond, 10*time.Millisecond))
	require.NoError(t, err)
	runDialer(t, d)
	var sides []*proxySide
	for range 3 {
		s := p.next(t)
		s.accept("c")
		sides = append(sides, s)
	}
	eventually(t, func() bool { return d.Stats().Connected == 3 }, "three connections")
	_ = sides[0].nc.Close()
	p.next(t).accept("c4")
	eventually(t, func() bool { st := d.Stats(); return st.Connected == 3 && st.Registered == 4 }, "replaced")
	for _, s := range sides[1:] {
		require.NoError(t, codec.WriteFrameTo(s.nc, requestHeaders(1, "still-there"), 0))
		s.recv(func(m *agentv2.AgentToProxy) bool { return m.GetResponse() != nil })
	}
	select {
	case s := <-p.conns:
		t.Fatalf("unexpected extra registration from %s", s.reg.GetAgentId())
	default:
	}
}

func TestReverseDialerRegistrationTimeout(t *testing.T) {
	t.Parallel()
	p := startFakeProxy(t, "tcp")
	srv := newTestServer(t, Base{})
	t.Cleanup(srv.Close)
	var got dialErrors
	d, err := NewReverseDialer(srv, p.addr, WithRegistrationTimeout(100*time.Millisecond),
		WithReconnectBackoff(time.Millisecond, 5*time.Millisecond), WithDialErrorHandler(got.handler))
	require.NoError(t, err)
	start := time.Now()
	runDialer(t, d)
	p.next(t) // and never answer
	errs, _ := got.waitFor(t, 1)
	assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(errs[0]), "%v", errs[0])
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
}

// TestReverseDialerStops: Close during a long backoff returns at once, and
// a server that shuts down ends Run.
func TestReverseDialerStops(t *testing.T) {
	t.Parallel()
	t.Run("CloseDuringBackoff", func(t *testing.T) {
		t.Parallel()
		p := startFakeProxy(t, "tcp")
		srv := newTestServer(t, Base{})
		t.Cleanup(srv.Close)
		var got dialErrors
		d, err := NewReverseDialer(srv, p.addr, WithReconnectBackoff(time.Hour, time.Hour), WithDialErrorHandler(got.handler))
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- d.Run(context.Background()) }()
		p.next(t).reject("unauthenticated: no")
		got.waitFor(t, 1)
		start := time.Now()
		require.NoError(t, d.Close(context.Background()))
		require.NoError(t, <-done)
		assert.Less(t, time.Since(start), time.Second)
		require.NoError(t, d.Close(context.Background()), "Close is idempotent")
	})
	t.Run("ServerShutdown", func(t *testing.T) {
		t.Parallel()
		p := startFakeProxy(t, "tcp")
		srv := newTestServer(t, Base{})
		d, err := NewReverseDialer(srv, p.addr, WithReconnectBackoff(time.Millisecond, time.Millisecond))
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- d.Run(context.Background()) }()
		s := p.next(t)
		s.accept("c")
		srv.Close()
		s.closedByAgent()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(waitTimeout):
			t.Fatal("Run went on after the server closed")
		}
	})
	t.Run("ContextEnds", func(t *testing.T) {
		t.Parallel()
		p := startFakeProxy(t, "unix")
		srv := newTestServer(t, Base{})
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- DialReverse(ctx, srv, p.addr) }()
		s := p.next(t)
		s.accept("c")
		cancel()
		s.closedByAgent()
		require.NoError(t, <-done)
	})
}

func TestReverseDialerOptions(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Base{})
	t.Cleanup(srv.Close)
	bad := map[string]struct {
		addr string
		opts []ReverseDialOption
	}{
		"NoScheme":       {addr: "127.0.0.1:9"},
		"HTTPScheme":     {addr: "http://127.0.0.1:9"},
		"NoPort":         {addr: "tcp://127.0.0.1"},
		"NoPath":         {addr: "unix://"},
		"ZeroConns":      {addr: "tcp://127.0.0.1:9", opts: []ReverseDialOption{WithConnections(0)}},
		"BackoffInverse": {addr: "tcp://127.0.0.1:9", opts: []ReverseDialOption{WithReconnectBackoff(time.Second, time.Millisecond)}},
		"ZeroTimeout":    {addr: "tcp://127.0.0.1:9", opts: []ReverseDialOption{WithRegistrationTimeout(0)}},
		"NilRand":        {addr: "tcp://127.0.0.1:9", opts: []ReverseDialOption{WithRand(nil)}},
	}
	for name, tc := range bad {
		_, err := NewReverseDialer(srv, tc.addr, tc.opts...)
		assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err), "%s: %v", name, err)
	}
	_, err := NewReverseDialer(nil, "tcp://127.0.0.1:9")
	assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err))
	assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(DialReverse(context.Background(), srv, "ftp://x")))

	d, err := NewReverseDialer(srv, "unix:///nonexistent/aw.sock")
	require.NoError(t, err)
	require.NoError(t, d.Close(context.Background()))
	assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(d.Run(context.Background())), "Run after Close")
}
